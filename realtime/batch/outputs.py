"""Where a batch writes, so that nothing is lost and nothing counts twice: each input's outputs in
DIR/<name>/, written under temporary names and renamed once complete; the options' fingerprint
that says whether an earlier result still holds; DIR/manifest.jsonl, one line per input and run,
appended as each finishes.

A manifest line (schema partsight.batch/1): input (a URL's credentials redacted: redact_url),
status (ok, failed, skipped), output (the folder's name), exercise, frames, duration_s (of the
video processed), reps (person id -> count, null without an exercise), seconds (wall time of the
job), node (the worker's Ray node id), attempts, unreadable (an image folder's files skipped as
unreadable images: their names; the rest of the folder is processed), error (one line, or null), fingerprint,
finished (ISO 8601 time)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from realtime.config import PipelineConfig
from realtime.job import PARTIAL_PREFIX, JobOutputs
from realtime.sources import URL, redact_url

MANIFEST_NAME = "manifest.jsonl"
MANIFEST_SCHEMA = "partsight.batch/1"
DONE_STATUSES = ("ok", "skipped")


@dataclass(frozen=True)
class OutputSet:
    """One input's outputs in `folder` (DIR/<name>/): `<name>.mp4` (annotated), `<name>.jsonl`
    (one line per frame), with `summary` `<name>.summary.json` and with `labels` the label PNGs in
    `labels/`. Each is first written as `.part-<its name>` (the MP4 keeps its suffix, which picks
    its format) and renamed by `commit` once all are complete."""

    folder: Path
    summary: bool = False
    labels: bool = False

    @property
    def name(self) -> str:
        return self.folder.name

    def finals(self) -> list[Path]:
        names = [f"{self.name}.mp4", f"{self.name}.jsonl"]
        names += [f"{self.name}.summary.json"] if self.summary else []
        names += ["labels"] if self.labels else []
        return [self.folder / name for name in names]

    def partial(self, final: Path) -> Path:
        return final.with_name(PARTIAL_PREFIX + final.name)

    def job_outputs(self, *, audio: bool, readout: bool = False) -> JobOutputs:
        """What run_job writes: the temporary names."""
        video, metrics, *rest = (self.partial(p) for p in self.finals())
        summary = rest.pop(0) if self.summary else None
        labels = rest.pop(0) if self.labels else None
        return JobOutputs(video=str(video), metrics=str(metrics), summary=None if summary is None else str(summary),
                          labels_dir=None if labels is None else str(labels), audio=audio, readout=readout)

    def prepare(self) -> None:
        """Removes what an interrupted or killed attempt left and makes the folder."""
        self.discard()
        self.folder.mkdir(parents=True, exist_ok=True)

    def commit(self) -> None:
        """Renames every temporary output to its final name (replacing an earlier result's).
        FileNotFoundError when one is missing (the job did not write it)."""
        for final in self.finals():
            part = self.partial(final)
            if not part.exists():
                raise FileNotFoundError(f"{part.name} was not written")
        for final in self.finals():
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(self.partial(final), final)

    def discard(self) -> None:
        """Removes the temporary outputs (a finished earlier result stays), and the folder when
        that leaves it empty."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(PARTIAL_PREFIX + "*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if not any(self.folder.iterdir()):
            self.folder.rmdir()

    def complete(self) -> bool:
        return all(path.exists() for path in self.finals())


def fingerprint(config: PipelineConfig, *, labels: bool, audio: bool, readout: bool) -> str:
    """A hash of what shapes an input's outputs: every option of `config` (the source as a path
    or URL, the exercise included), the output choices, and a file's size and modification time
    (an input replaced by another file of the same name is done again) or, for an image folder,
    those of each file in it (an image replaced or repaired in place). A URL's credentials are
    left out (redact_url): they do not shape the outputs, and no hash of a password in the
    manifest can be tried against guesses."""
    options = asdict(config)
    source = options["source"] = redact_url(config.source)
    if not URL.match(source):
        path = Path(source)
        try:
            if path.is_dir():
                options["source_stat"] = [[file.name, *_size_and_time(file)]
                                          for file in sorted(path.iterdir()) if file.is_file()]
            else:
                options["source_stat"] = _size_and_time(path)
        except OSError:
            options["source_stat"] = None
    options.update(labels=labels, audio=audio, readout=readout, schema=MANIFEST_SCHEMA)
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _size_and_time(path: Path) -> list[int]:
    """[size in bytes, modification time in ns] of the file at `path` (one stat)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


class Manifest:
    """DIR/manifest.jsonl: read at the start (the latest line per input decides whether an input
    is done), appended and flushed to disk line by line as inputs finish. Only the driver writes."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME

    def latest(self) -> dict[str, dict[str, Any]]:
        """input -> its latest line; a line a crash cut short is ignored."""
        lines: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return lines
        for text in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and isinstance(line.get("input"), str):
                lines[line["input"]] = line
        return lines

    def append(self, line: dict[str, Any]) -> dict[str, Any]:
        """Adds `line` with the schema and the time, flushed to disk, on a line of its own (after a
        line a crash cut short too); returns it as written."""
        line = {"schema": MANIFEST_SCHEMA, **line, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as out:
            cut_short = False
            if out.seek(0, os.SEEK_END):
                out.seek(-1, os.SEEK_END)
                cut_short = out.read(1) != b"\n"
            out.write((b"\n" if cut_short else b"") + json.dumps(line).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        return line


def already_done(line: dict[str, Any] | None, fingerprint_now: str, outputs: OutputSet) -> bool:
    """Whether an input's latest manifest line says it is done with these options and its outputs
    are all there."""
    return (line is not None and line.get("status") in DONE_STATUSES and line.get("fingerprint") == fingerprint_now
            and outputs.complete())
