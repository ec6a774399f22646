"""The weights cache: a per-user folder (or $PARTSIGHT_WEIGHTS_DIR) holding model files."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import platformdirs

WEIGHTS_DIR_ENV = "PARTSIGHT_WEIGHTS_DIR"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One weights file in the cache: its cache file name, sources and checksum.

    `sha256` / `size_bytes` are None for files users download by hand whose exact bytes we
    could not pin; `manual` then says where to get them.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size_bytes: int | None
    manual: str | None = None


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or not the file it claims to be."""


def weights_dir() -> Path:
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("partsight") / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def how_to_get(file: WeightFile, name: str | None = None) -> str:
    """What to do to get `file` into the cache; `name`: the model or network it belongs to, named
    in the fetch command when given."""
    where = weights_dir()
    if file.manual:
        return f"{file.manual} Put it at {where / file.filename} (or set {WEIGHTS_DIR_ENV})."
    command = f"run 'partsight weights fetch {name}'" if name else \
        "run 'partsight weights fetch NAME' for it (its NAME in 'partsight weights list')"
    return (
        f"{command}, "
        f"or download {file.urls[0]} to {where / file.filename} (or set {WEIGHTS_DIR_ENV} to a folder holding it)"
    )


def cached_path(file: WeightFile) -> Path:
    return weights_dir() / file.filename


def missing_error(missing: Sequence[tuple[str | None, WeightFile]]) -> WeightsError:
    """The one-line error for weights files missing from the cache, each given as (the model or
    network it belongs to, its name in `partsight weights list`; file): one file with how_to_get's
    words, several named together with the `weights fetch` name of each."""
    if len(missing) == 1:
        name, file = missing[0]
        return WeightsError(f"the weights file {file.filename} is missing: {how_to_get(file, name)}")
    each = ", ".join(f"{name} ({file.filename})" for name, file in missing)
    return WeightsError(f"{len(missing)} weights files are missing from {weights_dir()}: run 'partsight weights "
                        f"fetch NAME' for each of {each} (or set {WEIGHTS_DIR_ENV} to a folder holding them)")


def check_sha256(path: Path, file: WeightFile, name: str | None = None) -> None:
    if file.sha256 is None:
        return
    actual = sha256_of(path)
    if actual != file.sha256:
        raise WeightsError(
            f"{path} failed its sha256 check (expected {file.sha256[:12]}…, got {actual[:12]}…): "
            f"the file is truncated or altered; delete it and {how_to_get(file, name)}"
        )


def resolve(file: WeightFile, path: str | Path | None = None, *, name: str | None = None) -> Path:
    """The verified local path of `file`: `path` when given, else the cache entry. `name`: the
    model or network the file belongs to (its name in `partsight weights list`), for the error
    that says how to get a missing or altered file. WeightsError when the file is missing or
    fails its sha256 check."""
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise WeightsError(f"weights file {explicit} does not exist")
        if explicit.name == file.filename:
            check_sha256(explicit, file, name)
        return explicit
    cached = cached_path(file)
    if not cached.is_file():
        raise missing_error([(name, file)])
    check_sha256(cached, file, name)
    return cached


def cached_status(file: WeightFile) -> tuple[str, str]:
    """(status, detail) of `file`'s cache entry without reading it: "missing", "present", "wrong
    size" (its size is not the registry's: detail says both) or "empty" (a zero-byte file whose
    size the registry does not know)."""
    path = cached_path(file)
    if not path.is_file():
        return "missing", ""
    size = path.stat().st_size
    if file.size_bytes is not None and size != file.size_bytes:
        return "wrong size", f"{size} bytes, not {file.size_bytes}: truncated or another file"
    if size == 0:
        return "empty", "0 bytes"
    return "present", ""


@dataclass(frozen=True)
class VerifyReport:
    filename: str
    path: Path
    status: str  # "ok", "missing", "mismatch" or "unpinned"
    detail: str = ""


def verify(file: WeightFile) -> VerifyReport:
    path = cached_path(file)
    if not path.is_file():
        return VerifyReport(file.filename, path, "missing", how_to_get(file))
    if file.sha256 is None:
        return VerifyReport(file.filename, path, "unpinned", "no published sha256 to compare with")
    actual = sha256_of(path)
    if actual != file.sha256:
        return VerifyReport(
            file.filename, path, "mismatch",
            f"sha256 {actual[:12]}… differs from the expected {file.sha256[:12]}…: the file is "
            f"truncated or altered; delete it and fetch it again",
        )
    return VerifyReport(file.filename, path, "ok")


ProgressCallback = Callable[[int, int | None], None]


def fetch(file: WeightFile, *, timeout_s: float = 30.0, progress: ProgressCallback | None = None) -> Path:
    """Download `file` into the cache: to a temporary file, sha256-checked, renamed atomically."""
    target = cached_path(file)
    if target.is_file() and verify(file).status in ("ok", "unpinned"):
        return target
    if file.manual:
        raise WeightsError(f"{file.filename} needs a manual download: {how_to_get(file)}")
    created = _make_folder(target.parent)
    try:
        errors = []
        for url in file.urls:
            try:
                _download(url, target, file, timeout_s, progress)
                return target
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                errors.append(f"{url} ({reason})")
        raise WeightsError(
            f"could not download {file.filename} from {'; '.join(errors)}; download it by hand into "
            f"{target.parent} or set {WEIGHTS_DIR_ENV} to a folder that holds it"
        )
    except BaseException:  # a failed fetch leaves none of the folders it made
        with contextlib.suppress(OSError):  # one that something else has filled meanwhile is kept
            for folder in created:
                folder.rmdir()
        raise


def _make_folder(folder: Path) -> list[Path]:
    """Creates `folder` and its missing parents; returns those it created, deepest first.
    WeightsError (one line) when it cannot (a parent is a file, no permission)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if missing:
        try:
            missing[0].mkdir(parents=True)
        except OSError as exc:
            raise WeightsError(f"cannot create the weights folder {missing[0]}: {exc.strerror} (set "
                               f"{WEIGHTS_DIR_ENV} to a folder for the weights)") from None
    return missing


def _download(url: str, target: Path, file: WeightFile, timeout_s: float,
              progress: ProgressCallback | None) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{file.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            total = response.length or file.size_bytes
            done = 0
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        check_sha256(tmp, file)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
