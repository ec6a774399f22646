"""A batch's inputs: files, folders (every video inside, recursively), glob patterns, URLs and
manifests (`.txt`: one path or URL per line, `#` comments; `.csv`: a `path` column and an
optional `exercise` column), expanded in natural order (`clip2` before `clip10`) into one
BatchInput per video, each with an output folder name of its own."""
from __future__ import annotations

import csv
import glob
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence
from urllib.parse import unquote, urlsplit

from realtime.sources import IMAGE_SUFFIXES, URL, VIDEO_SUFFIXES, natural_key, redact_url

MANIFEST_SUFFIXES = (".txt", ".csv")
_GLOB = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^\w.-]+")  # \w: Unicode letters, digits and _
MAX_NAME_BYTES = 200  # a file name's limit is 255 bytes: room for "-N", ".part-" and ".summary.json"


@dataclass(frozen=True)
class BatchInput:
    """source: a video file's absolute path, an image-sequence folder, or a URL (a path that does
    not exist stays as given, to be recorded as failed); exercise: the exercise this input counts
    (a manifest row's; None = the command's --exercise)."""

    source: str
    exercise: str | None = None


def expand_inputs(specs: Sequence[str], *, exclude: Path | None = None) -> list[BatchInput]:
    """Every input `specs` name, in their order, each folder's and glob's in natural order; an
    input named twice (a URL: with any credentials, as the manifest shows it redacted) is kept
    once (its first time), one inside `exclude` (the output folder, when it lies in an input
    folder) not at all. ValueError (one line) for a glob that matches nothing, a folder without
    videos or images, or a manifest that cannot be read."""
    found: dict[str, BatchInput] = {}
    for spec in specs:
        for item in _expand(spec, exercise=None, base=Path.cwd(), manifests=True):
            if exclude is None or URL.match(item.source) or not Path(item.source).is_relative_to(exclude):
                found.setdefault(redact_url(item.source), item)
    return list(found.values())


def _expand(spec: str, *, exercise: str | None, base: Path, manifests: bool) -> Iterable[BatchInput]:
    spec = spec.strip()
    if URL.match(spec):
        yield BatchInput(spec, exercise)
        return
    path = (base / Path(spec).expanduser()).absolute()
    if not path.exists() and _GLOB.search(spec):
        matches = sorted(glob.glob(str(path), recursive=True), key=_path_key)
        if not matches:
            raise ValueError(f"{spec} matches no file")
        for match in matches:
            yield from _expand(match, exercise=exercise, base=base, manifests=False)
    elif path.is_dir():
        videos = folder_videos(path)
        if not videos:
            raise ValueError(f"{spec} holds no video (looked for {' '.join(sorted(VIDEO_SUFFIXES))}, also in its "
                             "subfolders) and no images")
        yield from (BatchInput(str(p), exercise) for p in videos)
    elif manifests and path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        yield from read_manifest(path)
    else:
        yield BatchInput(str(path), exercise)


def folder_videos(folder: Path) -> list[Path]:
    """The videos in `folder` and its subfolders (by suffix, VIDEO_SUFFIXES) in natural order of
    their relative paths; a folder holding images and no videos is itself one input, an image
    sequence (as `process` reads a folder)."""
    found = []
    for entry in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        files = [p for p in entry.iterdir() if p.is_file()]
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        found += videos
        if not videos and any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
            found.append(entry)
    return sorted(found, key=lambda p: [natural_key(part) for part in p.relative_to(folder).parts])


def read_manifest(path: Path) -> list[BatchInput]:
    """A `.txt` manifest's lines (blank ones and `#` comments skipped) or a `.csv` manifest's rows
    (`path`, optional `exercise`; an empty exercise cell = the command's --exercise). Relative paths
    are relative to the manifest's folder; a line naming a folder adds its videos."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the manifest {path}: {exc}") from None
    if path.suffix.lower() == ".txt":
        rows = [(line.strip(), None) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    else:
        reader = csv.DictReader(text.splitlines())
        if "path" not in (reader.fieldnames or ()):
            found = ", ".join(reader.fieldnames or ()) or "none"
            raise ValueError(f"the manifest {path} has no 'path' column (its first row names: {found}; a CSV manifest "
                             "has the columns path and, optionally, exercise)")
        rows = [((row.get("path") or "").strip(), (row.get("exercise") or "").strip() or None) for row in reader]
        rows = [(spec, exercise) for spec, exercise in rows if spec]
    return [item for spec, exercise in rows
            for item in _expand(spec, exercise=exercise, base=path.parent, manifests=False)]


def output_names(inputs: Sequence[BatchInput], taken: dict[str, str]) -> dict[str, str]:
    """A folder name per input source, unique ignoring case (`clip`, `clip-2`, ...; casefolded): `taken` (an
    input as the manifest shows it, credentials redacted -> name, e.g. from an earlier run's
    manifest) keeps its names; the others get their stem."""
    names = dict(taken)
    used = {name.casefold() for name in names.values()}
    for item in inputs:
        shown = redact_url(item.source)
        if shown in names:
            continue
        stem = _stem(item.source)
        name, number = stem, 1
        while name.casefold() in used:
            number += 1
            name = f"{stem}-{number}"
        names[shown] = name
        used.add(name.casefold())
    return {item.source: names[redact_url(item.source)] for item in inputs}


def _stem(source: str) -> str:
    """A safe folder name from a path's or URL's last part (percent-decoded) without its suffix:
    Unicode letters and digits, `_`, `.` and `-` kept (in NFC, as macOS's decomposed names too),
    every other run of characters one `_`, at most MAX_NAME_BYTES in UTF-8; "input" when none is left."""
    try:  # a password's "[", "/" or "?" would mislead urlsplit: its user-info goes first
        last = unquote(PurePosixPath(urlsplit(redact_url(source)).path).name) if URL.match(source) else Path(source).name
    except ValueError:  # a host in brackets that is no IPv6 address
        last = ""
    stem = last.rsplit(".", 1)[0] if "." in last.lstrip(".") else last
    stem = _UNSAFE.sub("_", unicodedata.normalize("NFC", stem))
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem.strip("._") or "input"


def _path_key(path: str) -> list:
    return [natural_key(part) for part in Path(path).parts]
