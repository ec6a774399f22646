"""`partsight bench-serve URL`: a running service's /v1/parse under load from this machine, as one
JSON object: completed and successful requests a second, latency percentiles of the successful ones,
the count of each status (429 = refused for load) with the Retry-After values given, and, with
--server-pid, the server process's resident memory every `rss_every` requests. Closed loop
(`concurrency` clients back to back) or open loop (`rate` requests a second, whatever the answers)."""
from __future__ import annotations

import http.client
import statistics
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def multipart_image(image: bytes, filename: str = "frame.jpg") -> tuple[bytes, str]:
    """A multipart/form-data body holding `image` as the field "image"; (body, content type)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc); None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


IDLE_RECONNECT_S = 2.0  # uvicorn closes keep-alive connections idle for 5 s: never reuse one that old


class _Client(threading.local):
    connection: http.client.HTTPConnection | None = None
    last_s: float = 0.0


def bench_serve(url: str, image: bytes, *, requests: int, concurrency: int, rate: float | None = None,
                warmup: int = 0, token: str | None = None, server_pid: int | None = None, rss_every: int = 100,
                timeout_s: float = 600.0) -> dict:
    """Sends `warmup` requests one after another, unmeasured (a fresh server's first parse at a
    new size is slow), then `requests` POST /v1/parse with `image` to the service at `url` (see
    the module)."""
    parts = urllib.parse.urlsplit(url)
    body, content_type = multipart_image(image)
    headers = {"Content-Type": content_type, "Connection": "keep-alive"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    local = _Client()
    results: list[tuple[float, int, str | None]] = []  # (latency s, status, Retry-After)
    rss: list[list[float]] = []
    failures: Counter[str] = Counter()  # why requests got no answer (status 0)
    lock = threading.Lock()

    def one(_index: int) -> None:
        start = time.perf_counter()
        if local.connection is not None and start - local.last_s > IDLE_RECONNECT_S:
            local.connection.close()
            local.connection = None
        if local.connection is None:
            local.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
        failure = None
        try:
            local.connection.request("POST", "/v1/parse", body=body, headers=headers)
            response = local.connection.getresponse()
            response.read()
            status, retry = response.status, response.getheader("Retry-After")
            if response.getheader("Connection", "").lower() == "close":
                local.connection.close()
                local.connection = None
        except (OSError, http.client.HTTPException) as exc:
            local.connection.close()
            local.connection = None
            status, retry, failure = 0, None, type(exc).__name__  # no answer
        local.last_s = time.perf_counter()
        with lock:
            results.append((local.last_s - start, status, retry))
            if failure:
                failures[failure] += 1
            done = len(results)
        if server_pid is not None and done % rss_every == 0:
            memory = rss_mb(server_pid)
            with lock:
                rss.append([done, memory])

    for index in range(warmup):
        one(index)
    results.clear()
    failures.clear()
    if server_pid is not None:
        rss.append([0, rss_mb(server_pid)])
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="bench-serve") as pool:
        if rate is None:
            list(pool.map(one, range(requests)))
        else:
            futures = []
            for index in range(requests):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(one, index))
            for future in futures:
                future.result()
    wall_s = time.perf_counter() - started
    ok = [latency * 1000 for latency, status, _ in results if status == 200]
    statuses = Counter(str(status) for _, status, _ in results)
    retry_after = sorted({int(retry) for _, status, retry in results if status == 429 and retry})
    return {
        "url": url,
        "requests": requests,
        "concurrency": concurrency,
        "rate_per_s": rate,
        "warmup": warmup,
        "wall_s": round(wall_s, 2),
        "completed_per_s": round(len(results) / wall_s, 3),
        "ok_per_s": round(len(ok) / wall_s, 3),
        "status": dict(sorted(statuses.items())),
        "server_errors": sum(n for status, n in statuses.items() if status.startswith("5")),
        "no_answer": dict(failures),
        "latency_ms": {"p50": _round(_percentile(ok, 50)), "p95": _round(_percentile(ok, 95)),
                       "mean": _round(statistics.fmean(ok) if ok else None)},
        "retry_after_s": retry_after,
        **({"rss_mb": rss} if server_pid is not None else {}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
