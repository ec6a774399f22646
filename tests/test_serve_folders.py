"""A serving process's temporary folders (realtime.serve.folders) when its process dies: each test
holds a folder in a real child Python, stops it at a chosen step (an audit hook pauses it there
and says so) and kills it with SIGKILL there, or lets it go on; the folders are left on disk
as such a kill leaves them, and `remove_orphans` is what the next `serve` runs at its start."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _serve import ROOT
from realtime.serve.folders import JOBS_PREFIX, LOCK_NAME, STAGED_FOR_S, remove_orphans

pytestmark = pytest.mark.timeout(300)

# argv: "hold" (make an OwnedFolder, print its path, wait for a line, remove it, print "removed")
# or "orphans" (print what remove_orphans removes); then the audit events to pause at (comma
# separated) and which of them (1: the first) pauses: the child prints "paused EVENT PATH" and
# waits for a line before the event's operation runs.
CHILD = r"""
import logging, sys, tempfile
from realtime.serve.folders import JOBS_PREFIX, OwnedFolder, remove_orphans

action, pause_at, pause_count = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
seen = 0

def pause(event, args):
    global seen
    if event in pause_at:
        seen += 1
        if seen == pause_count:
            print("paused", event, args[0], flush=True)
            sys.stdin.readline()

logging.basicConfig(format="%(levelname)s %(message)s")
tempfile.gettempdir()  # found before the hook: it writes and removes a file to try the folder
sys.addaudithook(pause)
if action == "hold":
    folder = OwnedFolder(JOBS_PREFIX)
    print(folder.path, flush=True)
    sys.stdin.readline()
    folder.remove()
    print("removed", flush=True)
else:
    print([str(path) for path in remove_orphans()], flush=True)
"""


@pytest.fixture(scope="module")
def squat30(media_dir: Path) -> Path:
    return media_dir / "faults" / "squat30.mp4"


def _child(tmp_path: Path, action: str, pause_at: str = "", count: int = 0) -> subprocess.Popen:
    """CHILD with its temporary folder in `tmp_path`."""
    return subprocess.Popen([sys.executable, "-c", CHILD, action, pause_at, str(count)], cwd=ROOT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _go_on(child: subprocess.Popen) -> None:
    child.stdin.write("\n")
    child.stdin.flush()


def _add_jobs(folder: Path, video: Path) -> list[Path]:
    """Job folders as the server makes them (`<job>/input`: a client's video), the same names
    each time, until one is listed after the lock file (a directory walk meets it later)."""
    jobs = []
    while len(jobs) < 8:
        jobs.append(folder / f"job-{len(jobs)}")
        jobs[-1].mkdir()
        shutil.copyfile(video, jobs[-1] / "input")
        names = os.listdir(folder)
        if names.index(jobs[-1].name) > names.index(LOCK_NAME):
            break
    return jobs


def _age(path: Path, age_s: float) -> None:
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_server_killed_anywhere_in_removing_its_folder_leaves_no_video_for_good(tmp_path, squat30):
    """A stopping server removes its job folder; a SIGKILL (a service manager's, after its stop
    timeout) may land at any step of that. Killed at each step in turn, the next server's
    `remove_orphans` leaves none of the clients' videos: the lock file goes last (it went in
    directory order, before a job listed after it, and the folder then kept that job's video
    without a lock file, which no server removes)."""
    step = 0
    while True:
        step += 1
        child = _child(tmp_path, "hold", "os.remove,os.rmdir", step)
        folder = Path(child.stdout.readline().strip())
        jobs = _add_jobs(folder, squat30)
        _go_on(child)
        said = child.stdout.readline()
        if said.startswith("removed"):  # done before the step: each step was a kill's
            assert child.wait(60) == 0 and not folder.exists()
            break
        assert said.startswith("paused"), said
        child.kill()
        child.communicate(timeout=60)
        remove_orphans(tmp_path)
        assert not list(tmp_path.glob(f"{JOBS_PREFIX}*/*/input")), f"killed at step {step}, {said}"
        assert not folder.exists() or not os.listdir(folder), (step, said)  # at most the empty folder
    assert step > 2 * len(jobs) + 1, "each video, its job folder and the lock file were a step"


def test_a_folder_whose_server_was_killed_making_it_goes_after_a_minute(tmp_path, caplog):
    """Killed between making its folder and naming the lock file in it, a server leaves a folder
    holding only the lock file still to be named: never removed before. Its lock is free; it goes
    once older than STAGED_FOR_S (a younger one may be being made); one whose server lives stays."""
    child = _child(tmp_path, "hold", "os.rename", 1)
    said = child.stdout.readline()
    assert said.startswith("paused os.rename"), said
    (folder,) = tmp_path.glob(f"{JOBS_PREFIX}*")
    staged = folder / f"{LOCK_NAME}.new"
    assert os.listdir(folder) == [staged.name]
    _age(staged, STAGED_FOR_S + 1)
    assert remove_orphans(tmp_path) == []  # its server still holds the lock
    child.kill()
    child.communicate(timeout=60)
    _age(staged, 0)
    assert remove_orphans(tmp_path) == [] and folder.exists()
    _age(staged, STAGED_FOR_S + 1)
    with caplog.at_level(logging.WARNING, logger="realtime.serve.folders"):
        assert remove_orphans(tmp_path) == [folder] and not folder.exists()
    assert f"removed {folder}, left by a server that was killed (process {child.pid})" in caplog.text


def test_a_folder_its_stopping_server_removes_is_not_said_to_be_a_killed_ones(tmp_path, squat30):
    """A server starts while another stops cleanly: it opens the stopping one's lock file, the
    stopping one removes its folder and lets go of the lock, and only then does the starting one
    lock it. That folder is no killed server's: nothing is said or removed (it said "removed
    ..., left by a server that was killed")."""
    stopping = _child(tmp_path, "hold")
    folder = Path(stopping.stdout.readline().strip())
    _add_jobs(folder, squat30)
    starting = _child(tmp_path, "orphans", "fcntl.flock", 1)
    assert starting.stdout.readline().startswith("paused fcntl.flock")  # the lock file open, not locked
    _go_on(stopping)
    assert stopping.stdout.readline() == "removed\n" and stopping.wait(60) == 0 and not folder.exists()
    _go_on(starting)
    out, err = starting.communicate(timeout=60)
    assert starting.returncode == 0 and out == "[]\n" and err == "", (out, err)
    stopping.communicate(timeout=60)
