"""A real two-node Ray cluster on 127.0.0.1 for the tests, started with the `ray` CLI as a user
starts one (`ray start --head` on one machine, `ray start --address` on another): each node is a
`ray start --block` process owning its Ray processes, with its own temp folder and ports, and
stopping it (SIGTERM) stops them. `ray stop` is never used: it would stop every Ray on the machine."""
from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # the batch passes only small results through it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_ports(worker_ports: int) -> list[str]:
    """Ports a node listens on: free ones from the system's ephemeral range, and 200 for its
    workers from `worker_ports` (between the 10002-19999 of a local ray.init's workers and the
    ephemeral range, so they never collide)."""
    low = worker_ports
    return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--min-worker-port", str(low), "--max-worker-port", str(low + 199)]


class RayCluster:
    """A head node and `extra_nodes` more, each with `num_cpus` CPUs. `address` is what
    `--ray-address` takes; `env` (what the nodes run with: the caller's `env`, e.g. PYTHONPATH,
    and the cluster's token) is what a driver needs."""

    def __init__(self, root: Path, *, num_cpus: int = 1, extra_nodes: int = 1, env: dict[str, str]) -> None:
        self.root = root
        # a token of its own (Ray's token authentication), not the user's ~/.ray/auth_token
        self.env = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []
        self._logs: list[Path] = []
        self._worker_ports = random.randrange(20000, 32000 - 200 * (2 + extra_nodes), 200)
        try:
            self._start("head", ["--head", "--port", str(self.port), "--dashboard-port", str(free_port()),
                                 "--ray-client-server-port", str(free_port()), "--include-dashboard", "false",
                                 ], num_cpus)
            self._wait_started()
            for index in range(extra_nodes):
                self._start(f"node{index + 1}", ["--address", self.address], num_cpus)
                self._wait_started()
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, args: list[str], num_cpus: int) -> None:
        node_tmp = self.root / name
        node_tmp.mkdir(parents=True, exist_ok=True)
        self._logs.append(self.root / f"{name}.log")
        with self._logs[-1].open("wb") as log:
            self.nodes.append(subprocess.Popen(
                [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
                 "--num-gpus", "0", "--object-store-memory", str(OBJECT_STORE_BYTES), "--temp-dir", str(node_tmp),
                 "--disable-usage-stats", *_node_ports(self._worker_ports + 200 * len(self.nodes)), *args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True))

    def _wait_started(self, timeout_s: float = 240.0) -> None:
        """Waits until the last node started says "Ray runtime started" (it has joined the
        cluster) in its log."""
        node, log = self.nodes[-1], self._logs[-1]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if node.poll() is not None:
                raise RuntimeError(f"a Ray node exited while starting; see {log}")
            time.sleep(0.5)
        raise RuntimeError(f"a Ray node did not start in {timeout_s:.0f} s; see {log}")

    def worker_pids(self, name: str) -> list[int]:
        """This cluster's worker processes running actors of class `name` (Ray titles them
        `ray::NAME...`), found among the node processes' descendants in /proc."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
        ours = {node.pid for node in self.nodes}
        changed = True
        while changed:
            before = len(ours)
            ours |= {pid for pid, parent in parents.items() if parent in ours}
            changed = len(ours) != before
        found = []
        for pid in sorted(ours):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{name}"):
                found.append(pid)
        return found

    def stop(self) -> None:
        """SIGTERM to each node (it stops its own Ray processes), worker nodes first."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(10)
