"""The temporary folders of a serving process (its job folders, which hold the clients' uploaded
videos, and its uploads in progress). It removes them when it stops; killed (`kill -9`, a crash,
the machine's memory killer) it cannot, so each holds a lock file its process keeps locked
(flock) while it lives, which the kernel releases when the process dies, however it dies. A
starting `serve` removes the folders whose lock is free (`remove_orphans`): those of services no
longer running, never those of one running beside it."""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

JOBS_PREFIX = "partsight-jobs-"
UPLOADS_PREFIX = "partsight-uploads-"
LOCK_NAME = ".partsight-owner.lock"  # holds the owner's process id, for the log


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
        """Removes the folder and everything in it, then lets go of the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def remove_orphans(parent: Path | None = None) -> list[Path]:
    """Removes the OwnedFolders in `parent` (default: the temporary folder) whose owner is no
    longer running (their lock is free) and logs each; returns them. Folders without a lock file
    (being made, or another program's) and those it cannot open are left alone."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = []
    for folder in sorted(parent.glob(f"{JOBS_PREFIX}*")) + sorted(parent.glob(f"{UPLOADS_PREFIX}*")):
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no lock file, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner is running
            os.close(fd)
            continue
        try:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
        log.warning("removed %s, left by a server that was killed (process %s) with its clients' files", folder, owner)
        removed.append(folder)
    return removed
