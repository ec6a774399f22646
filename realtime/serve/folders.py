"""The temporary folders of a serving process (its job folders, which hold the clients' uploaded
videos, and its uploads in progress). It removes them when it stops; killed (`kill -9`, a crash,
the machine's memory killer) it cannot, so each holds a lock file its process keeps locked
(flock) while it lives, which the kernel releases when the process dies, however it dies. A
starting `serve` removes the folders whose lock is free (`remove_orphans`): those of services no
longer running, never those of one running beside it."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

JOBS_PREFIX = "partsight-jobs-"
UPLOADS_PREFIX = "partsight-uploads-"
LOCK_NAME = ".partsight-owner.lock"  # holds the owner's process id, for the log
STAGED_FOR_S = 60.0  # a folder holding only a lock file still to be named for longer: its server was killed making it


class OwnedFolder:
    """A new temporary folder (`path`, named `prefix` + random characters) locked by this process
    until `remove`. OSError when it cannot be made."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        staged = self.path / f"{LOCK_NAME}.new"  # locked before it takes its name: never seen unlocked
        self._fd = os.open(staged, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        os.rename(staged, self.path / LOCK_NAME)

    def remove(self) -> None:
        """Removes the folder and everything in it, the lock file last, then lets go of the lock."""
        _remove(self.path / LOCK_NAME)
        os.close(self._fd)


def remove_orphans(parent: Path | None = None) -> list[Path]:
    """Removes the OwnedFolders in `parent` (default: the temporary folder) whose owner is no
    longer running (their lock is free) and logs each; returns them. Folders without a lock file
    (another program's), those it cannot open and those whose owner is removing them are left
    alone; so is one holding only the lock file it is about to name (being made), unless older
    than STAGED_FOR_S (its server was killed making it)."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = []
    for folder in sorted(parent.glob(f"{JOBS_PREFIX}*")) + sorted(parent.glob(f"{UPLOADS_PREFIX}*")):
        lock = _lock_of(folder)
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no lock file, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner is running
            os.close(fd)
            continue
        try:
            if os.fstat(fd).st_nlink == 0:  # its owner, stopping, removed it: the folder is going too
                continue
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            _remove(lock)
        finally:
            os.close(fd)
        log.warning("removed %s, left by a server that was killed (process %s) with its clients' files", folder, owner)
        removed.append(folder)
    return removed


def _lock_of(folder: Path) -> Path:
    """`folder`'s lock file: the named one, or the one still to be named in a folder holding
    nothing else for longer than STAGED_FOR_S."""
    staged = folder / f"{LOCK_NAME}.new"
    try:
        if os.listdir(folder) == [staged.name] and time.time() - staged.stat().st_mtime > STAGED_FOR_S:
            return staged
    except OSError:
        pass
    return folder / LOCK_NAME


def _remove(lock: Path) -> None:
    """Removes the folder holding `lock` and everything in it; `lock` and the folder go only once
    all else has: a process killed on the way leaves the folder with its lock file, whose lock
    the kernel frees, so the next `remove_orphans` finds it."""
    folder = lock.parent
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name != lock.name]
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        if os.listdir(folder) == [lock.name]:
            lock.unlink()
            folder.rmdir()
