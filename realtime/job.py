"""One source through the whole pipeline into its outputs (annotated MP4, JSONL, label PNGs, the
fitness summary): what `process`, `batch`'s workers and the service's video jobs each run, so all
three write the same files for the same options."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from realtime.build import (
    Stages,
    build_analysers,
    build_parser,
    build_pipeline,
    build_run,
    checked_stages,
)
from realtime.config import X264_PRESETS, PipelineConfig
from realtime.logs import stop_signal, stop_signals_held
from realtime.models import Parser
from realtime.recorder import check_writable, is_label_png, label_map_files, write_problem
from realtime.metrics import SUMMARY_SCHEMA
from realtime.render import FrameRenderer, ViewSettings, plural
from realtime.sources import SourceInfo
from realtime.types import FrameResult

log = logging.getLogger(__name__)
PARTIAL_PREFIX = ".part-"  # a file written under this name beside its own is renamed once complete


@dataclass(frozen=True)
class JobOutputs:
    """Where one job writes. video: the annotated MP4; metrics: the JSONL (one line per frame);
    summary: the repetition summary JSON (written only with an exercise); labels_dir: a label PNG per
    frame; plain_video: an MP4 of the frames as parsed, nothing drawn on them (at the annotated
    MP4's times and size, for a client that draws the label PNGs itself); audio: keep the source's
    sound in the MP4s; readout: draw the speed readout (FPS, the frame's position, the models) into
    the annotated MP4, which otherwise carries nothing that depends on the machine's load; preset:
    libx264's speed preset for the MP4s (realtime.config.X264_PRESETS)."""

    video: str
    metrics: str | None = None
    summary: str | None = None
    labels_dir: str | None = None
    plain_video: str | None = None
    audio: bool = True
    readout: bool = False
    preset: str = X264_PRESETS[0]

    # how `process` names each output in its one-line refusals
    OPTION_NAMES = {"video": "-o", "metrics": "--metrics", "summary": "--summary", "labels_dir": "--labels-dir",
                    "plain_video": "the plain video"}

    def check_paths(self, source: str | None) -> None:
        """Refuses, before anything is opened or written, outputs that would destroy data: an output
        that is the input (`source` when it is a file or a folder of frames on this machine) or two
        outputs on one path; paths compare as real paths (symlinks, relative paths) and with
        os.path.samefile where both exist; a summary that could not be written (it is written only
        at the end of the run: realtime.recorder.check_writable tries its path now); a labels
        folder holding files named as label PNGs are (%06d.png) that are not label PNGs (someone's
        images, such as frames ffmpeg wrote: a label PNG would replace them). ValueError naming
        the option(s)."""
        seen: dict[str, str] = {}
        for field_name, option in self.OPTION_NAMES.items():
            path = getattr(self, field_name)
            if path is None:
                continue
            if not str(path).strip():
                raise ValueError(f"{option} is empty: give a file name")
            if source is not None and os.path.exists(source) and _same_path(path, source):
                kind = "folder" if os.path.isdir(source) else "file"
                raise ValueError(f"{option} is the input {kind} ({source}); choose another path for the output")
            for other_path, other in seen.items():
                if _same_path(path, other_path):
                    raise ValueError(f"{other} and {option} are the same file ({path}); give each output its own path")
            seen[path] = option
        if self.summary is not None:
            try:
                check_writable(self.summary)
            except OSError as exc:
                option = self.OPTION_NAMES["summary"]
                raise ValueError(f"{option}: cannot write {self.summary}: {write_problem(self.summary, exc)}") from None
        if self.labels_dir is not None:
            foreign = next((path for path in label_map_files(Path(self.labels_dir)) if not is_label_png(path)), None)
            if foreign is not None:
                raise ValueError(f"{self.OPTION_NAMES['labels_dir']}: {foreign} is not a label PNG (8-bit grey) and "
                                 "this run's label PNGs would replace it; choose another folder")


@dataclass
class JobResult:
    """What one job did. frames: frames written to the MP4; seconds: wall time from the first frame
    asked for to the last written; error: the one-line reason the source or the recording ended
    early (None when it ended cleanly); recording_failed: the recording did (a full disk: the job
    ended there, and the MP4 plays the frames that reached the disk); stopped: the caller's stop
    event or a stop signal ended it (stop_signal: which, SIGINT for Ctrl-C or SIGTERM; None when
    none did);
    summary: the fitness summary (None without an exercise, or without a frame written); audio:
    one line on what became of the source's sound; labels_removed: label PNGs of an earlier run
    removed from the labels folder before this run's were written (Recorder); skipped: the names
    of an image folder's files left out as unreadable (realtime.sources.Source.skipped);
    summary_error: why the summary file could not be written at the end, in one line (None when
    it was, or was not to be); size_note: the MP4's size when it differs from the frames'
    (Recorder.size_note), else None; dropped: frames a live source or paced playback dropped
    because the processing fell behind (realtime.sources.Source.dropped)."""

    source: SourceInfo
    frames: int
    seconds: float
    error: str | None
    stopped: bool
    audio: str
    summary: dict[str, Any] | None = field(default=None)
    stop_signal: int | None = None
    labels_removed: int = 0
    skipped: list[str] = field(default_factory=list)
    summary_error: str | None = None
    size_note: str | None = None
    dropped: int = 0
    recording_failed: bool = False

    @property
    def interrupted(self) -> bool:
        return self.stop_signal is not None


class JobModels:
    """The parsers and result stages (BlazePose, the selfie segmenter, tracker, smoother) of the
    last `keep` sets of options, loaded once and lent to jobs run one after another (a batch
    worker): each job gets them with their memory reset (ResultStage.reset, as a pipeline does on
    a new source) and fresh analysers, so its outputs equal those of a fresh run; only the
    networks' loading (seconds per job with BlazePose on a CPU) is saved. Options that differ in
    no more than the source, the exercise and the frame limit share a set. Not for two jobs at
    once."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._sets: OrderedDict[PipelineConfig, tuple[Parser, Stages]] = OrderedDict()

    def lend(self, config: PipelineConfig) -> tuple[Parser, Stages]:
        """The parser and stages for `config`, reset; loaded now when no kept set fits. WeightsError
        naming every missing weights file first (realtime.build.checked_stages)."""
        key = replace(config, source=None, exercise=None, frame_limit=None)
        if key in self._sets:
            self._sets.move_to_end(key)
        else:
            stages = checked_stages(config)
            try:
                parser = build_parser(config)
            except BaseException:
                _close(stages)
                raise
            self._sets[key] = (parser, stages)
            while len(self._sets) > self.keep:
                _close(self._sets.popitem(last=False)[1][1])
        parser, stages = self._sets[key]
        for stage in stages.result:
            stage.reset()
        return parser, replace(stages, analysers=build_analysers(config))

    def close(self) -> None:
        """Closes every kept stage (a later `lend` loads new ones)."""
        while self._sets:
            _close(self._sets.popitem()[1][1])


def _close(stages: Stages) -> None:
    for stage in stages.result:
        stage.close()


def _same_path(a: str, b: str) -> bool:
    """Whether the paths name one file or folder: the same real path (symlinks and `..` resolved,
    existing or not), or the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def run_job(config: PipelineConfig, outputs: JobOutputs, *,
            on_start: Callable[[SourceInfo], None] | None = None,
            on_result: Callable[[FrameResult], None] | None = None,
            on_status: Callable[[str | None, SourceInfo], None] | None = None,
            stop: threading.Event | None = None, models: JobModels | None = None) -> JobResult:
    """Runs `config`'s source to its end (or until `stop` is set) and writes `outputs`.

    on_start gets the source's description once it is open; on_result every frame's result (from the
    pipeline's last step thread); on_status a live source's reconnection state each time it changes
    (None = connected again); models: the parser and stages to borrow instead of loading them
    (jobs run one after another). Raises whatever opening the source or the model raises (one-line
    errors: realtime.logs); a source that fails mid-run is reported in `error`, with every frame
    before it written. ValueError before anything is opened for outputs that would overwrite the
    source or each other (JobOutputs.check_paths)."""
    outputs.check_paths(config.source)
    renderer = FrameRenderer(ViewSettings(show_stats=outputs.readout))
    if models is None:
        stages, pipeline = build_run(config, renderer=renderer)
    else:
        parser, stages = models.lend(config)
        pipeline = build_pipeline(config, stages, renderer=renderer, parser=parser, owns_stages=False)
    recorder = pipeline.start_recording(outputs.video, metrics_path=outputs.metrics, labels_dir=outputs.labels_dir,
                                        plain_video_path=outputs.plain_video, audio=outputs.audio,
                                        preset=outputs.preset)
    try:
        info = pipeline.start()
    except BaseException:
        pipeline.stop()
        raise
    source = pipeline.source  # the pipeline lets go of it at a frame limit
    if on_start is not None:
        on_start(info)
    if on_result is not None:
        pipeline.subscribe(on_result)
    start = time.monotonic()
    shown_status = None
    stopped, signum = False, None
    try:
        while not pipeline.wait(0.2):
            if stop is not None and stop.is_set():
                stopped = True
                break
            if recorder.error is not None and not pipeline.recording:  # the pipeline let the failed recording go:
                break  # what the job did from here would be in none of its outputs
            status = pipeline.source_status
            if status != shown_status and on_status is not None:
                on_status(status, info)
            shown_status = status
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what was done so far is kept, summary included
        stopped, signum = True, stop_signal(exc)
    except BaseException:
        pipeline.stop()
        raise
    with stop_signals_held():  # a second Ctrl-C at once must not cut the finishing short
        pipeline.stop()
        seconds = time.monotonic() - start
        skipped = [] if source is None else source.skipped
        dropped = 0 if source is None else source.dropped
        # without a frame there is nothing to sum up, and an earlier run's summary stays, as its other files do
        summary = (fitness_summary(stages, info, skipped, interrupted=signum is not None, dropped=dropped,
                                   fps=None if source is None else source.fps)
                   if recorder.frames_written else None)
        summary_error = None
        if summary is not None and outputs.summary is not None:
            try:
                write_summary(outputs.summary, summary)
            except OSError as exc:  # checked at the start, yet a disk fills up, a folder goes
                log.exception("writing the summary %s failed", outputs.summary)
                summary_error = f"cannot write the summary {outputs.summary}: {exc.strerror or exc}"
    return JobResult(source=info, frames=recorder.frames_written, seconds=seconds, error=pipeline.error,
                     stopped=stopped, audio=_audio_line(outputs, recorder), summary=summary,
                     stop_signal=signum, labels_removed=recorder.labels_removed, skipped=skipped,
                     summary_error=summary_error, size_note=recorder.size_note, dropped=dropped,
                     recording_failed=recorder.error is not None)


def unreadable_words(names: list[str]) -> str:
    """An image folder's files skipped as unreadable (JobResult.skipped's names), in words:
    "2 unreadable images skipped (3.jpg, 4.png)", the first three named; "" for none."""
    if not names:
        return ""
    return f"{plural(len(names), 'unreadable image')} skipped ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


def fitness_summary(stages: Stages, info: SourceInfo, unreadable: Sequence[str] = (), *,
                    interrupted: bool = False, dropped: int = 0, fps: float | None = None) -> dict[str, Any] | None:
    """The repetition summary (schema partsight.summary/1) with the source's name, the frame rate
    its times use (`fps`, Source.fps: measured for a camera that states none; None: info.fps),
    the names of an image folder's files skipped as unreadable (JobResult.skipped; listed only
    when there are some), the frames a live source or paced playback dropped (JobResult.dropped;
    only when some were) and, for a run a stop signal cut short, `interrupted`; None without an
    exercise."""
    if not stages.analysers:
        return None
    summary = {"schema": SUMMARY_SCHEMA, **stages.analysers[0].summary()}
    summary["pose_source"] = stages.pose_source
    summary["source"] = {"name": info.name, "fps": info.fps if fps is None else fps, "note": info.note,
                         **({"unreadable": list(unreadable)} if unreadable else {}),
                         **({"dropped": dropped} if dropped else {}),
                         **({"interrupted": True} if interrupted else {})}
    return summary


def write_summary(path: str, summary: dict[str, Any]) -> None:
    """Writes the summary JSON to the file `path` whole or not at all: under a temporary name
    beside it (PARTIAL_PREFIX), renamed over it once written, with the earlier file's mode (a full
    disk leaves an earlier run's summary as it was, and no cut-off file). A symbolic link or a
    device (/dev/full) is written through, and a file in a folder the user may not write in, in
    place. OSError when it cannot."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2) + "\n"
    if target.is_symlink() or (target.exists() and not target.is_file()):  # written through, never replaced
        target.write_text(text)
        return
    partial = target.with_name(PARTIAL_PREFIX + target.name)
    try:
        partial.write_text(text)
        if target.exists():
            os.chmod(partial, stat.S_IMODE(target.stat().st_mode))
        os.replace(partial, target)
    except PermissionError:  # a file the user may write in a folder they may not: written in place
        partial.unlink(missing_ok=True)
        target.write_text(text)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _audio_line(outputs: JobOutputs, recorder) -> str:
    """What became of the source's sound in the MP4, in one line."""
    if not outputs.audio:
        return "audio: left out (--no-audio)"
    if recorder.audio:
        kept = f"audio: {', '.join(recorder.audio)} kept, in sync with the video"
        return f"{kept}; it {recorder.audio_note}" if recorder.audio_note else kept
    if recorder.audio_note:
        return f"audio: {recorder.audio_note}"
    return "audio: none (the source has no sound track, or is live)"
