"""Command-line options shared by several commands; their defaults are PipelineConfig's unless a
command says otherwise, so `config_from_args` turns them into the run's config."""
from __future__ import annotations

import argparse
import math
import sys

from realtime.config import OptionsError, default
from realtime.logs import one_line
from realtime.models.backends import BACKEND_CHOICES, DTYPES
from realtime.models.instance_people import PEOPLE_SOURCES
from realtime.models.registry import DEFAULT_MODEL, MODEL_SPECS
from realtime.models.person_mask import PERSON_MASK_SOURCES
from realtime.models.top_down import PARTS_MODES


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, not '{text}'")
    return value


def frames_between(text: str) -> int:
    """argparse type for a --frames that something is measured between (a rate, a change from one
    frame to the next): 2 or more."""
    return whole_number(text, 2)


def refuse_endless(frames: int | None, what: str, why: str) -> None:
    """OptionsError (a usage error) when a run over a source that never ends has no --frames
    (`frames`) to end it: "WHAT needs --frames: WHY never ends" (a looped file, a live source)."""
    if not frames:
        raise OptionsError(f"{what} needs --frames: {why} never ends")


def fps_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--fps", type=positive_float,
                         help="frame rate of an image sequence (a folder) or of a video file without timestamps (a "
                              "raw .h264, .hevc or .mjpeg stream); default: the rate a folder's seqinfo.ini or JSON "
                              "sidecar states, else 30; a raw stream: the rate its header states, else the rate FFmpeg "
                              "assumes (25); other videos, streams and webcams keep their own rate")


def readout_option(command: argparse.ArgumentParser) -> None:
    """--readout (realtime.job.JobOutputs.readout)."""
    command.add_argument("--readout", action="store_true",
                         help="draw the speed readout (FPS, frame, time, models) into the MP4; left out by default: "
                              "its figures depend on the machine's load")


def note_fps_kept(what: str) -> None:
    """Says on stderr, in one line, that --fps was given for sources it does not apply to; `what`:
    which sources keep their own rate."""
    print(f"partsight: note: --fps applies to image folders and raw video streams; {what}", file=sys.stderr)


def note_live_ignores(options: list[str], name: str) -> None:
    """Says on stderr, in one line, that `options` for files (--loop, --realtime) were given for
    the live source `name`, which plays as it comes, once, with no end."""
    applies = "applies" if len(options) == 1 else "apply"
    print(f"partsight: note: {' and '.join(options)} {applies} to files; {name} is live: its frames are taken as "
          "they come, newest first, with no end to start again from", file=sys.stderr)


def warning_field(error: str | None) -> dict[str, str]:
    """{"warning": error} for a report measured on the frames a source gave before it failed (the
    warning is also printed to stderr); {} when nothing failed."""
    if not error:
        return {}
    print(f"partsight: warning: {one_line(error)}; the report covers the frames read before it", file=sys.stderr)
    return {"warning": error}


def unreadable_field(names: list[str]) -> dict[str, list[str]]:
    """{"unreadable": names} for a report measured on an image folder whose files of these names
    were skipped as unreadable (realtime.sources.Source.skipped); {} for none."""
    return {"unreadable": names} if names else {}


def labels_without_images_field(names: list[str], images: int) -> dict[str, list[str]]:
    """{"labels_without_images": names} for a report measured on a dataset whose label files of
    these paths (relative to the dataset) had no image beside them and were left out
    (realtime.evaluation.labelled_images), said on stderr in one line too; {} for none."""
    from realtime.evaluation import labels_without_images_words
    from realtime.render import plural

    if not names:
        return {}
    listed = f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
    print(f"partsight: warning: {labels_without_images_words(len(names))} left out ({one_line(listed)}); "
          f"the report covers the other {plural(images, 'image')}", file=sys.stderr)
    return {"labels_without_images": names}


def refuse_unreadable(names: list[str], frames: int) -> None:
    """After a report on an image folder is printed: CliError (exit status 1) when files of these
    names were skipped as unreadable, in `process`'s words (realtime.job.unreadable_words)."""
    from realtime.cli import CliError
    from realtime.job import unreadable_words
    from realtime.render import plural

    if names:
        raise CliError(f"{unreadable_words(names)}; the report covers the other {plural(frames, 'frame')}")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, not '{text}'")
    return value


def frame_size(text: str) -> str:
    """argparse type for --size WxH: the text as given, once realtime.sources.parse_size (which
    reads it where it is used) accepts it, so a malformed size is a usage error."""
    from realtime.sources import parse_size

    try:
        parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_file(text: str) -> str:
    """argparse type for a file a command writes (process --metrics, --summary): any name but
    '-', which is no file here: standard output carries the command's own lines."""
    return _not_standard_output(text, "a file name")


def output_folder(text: str) -> str:
    """argparse type for a folder a command writes files into (process --labels-dir): any name
    but '-', as for output_file."""
    return _not_standard_output(text, "a folder name")


def _not_standard_output(text: str, wanted: str) -> str:
    if text == "-":
        raise argparse.ArgumentTypeError("writing to standard output ('-') is not supported, as it carries the "
                                         f"run's own lines: give {wanted}")
    return text


def mp4_path(text: str) -> str:
    """argparse type for the annotated video (process -o): a name ending in .mp4, as that is the
    container the recorder writes (fragmented MP4, realtime.recorder); an empty name is left to
    realtime.job's check of the outputs."""
    if text and not text.lower().endswith(".mp4"):
        raise argparse.ArgumentTypeError(f"the annotated video is an MP4: give a name ending in .mp4, not '{text}'")
    return text


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def port_number(text: str) -> int:
    """argparse type for a TCP port: 0 (any free port) to 65535."""
    value = whole_number(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, not '{text}'")
    return value


def smoothing_strength(text: str) -> float:
    """argparse type for --smoothing: a number from 0 (off) to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 (off) to 1, not '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 (off) to 1, not {value:g}")
    return value


def model_options(command: argparse.ArgumentParser, *, model: str | None = DEFAULT_MODEL,
                  max_people: int = default("max_people"), parts: bool = True) -> None:
    """--model (None: the window's last used), --weights, --device, --backend, --dtype,
    --internal-size, --max-people, --person-mask and, with `parts`, --parts."""
    command.add_argument("--model", default=model, choices=sorted(MODEL_SPECS),
                         help=f"model name (default {model or 'the last one used'})")
    command.add_argument("--weights", help="load the model from this file instead of the weights cache")
    command.add_argument("--device", default=default("device"), help="auto (CUDA when available), cpu or cuda")
    command.add_argument("--backend", default=default("backend"), choices=BACKEND_CHOICES,
                         help="where BodyPix, BlazePose and the person segmenters run on the CPU (default auto: "
                              "the fastest here, measured once per machine and input size)")
    command.add_argument("--dtype", default=default("dtype"), choices=DTYPES,
                         help="what the networks compute in (default fp32); bf16: faster, slightly less accurate, "
                              "on the CPU on OpenVINO where the CPU has native bfloat16, on CUDA under autocast")
    command.add_argument("--internal-size", type=positive_int,
                         help="network input long side in pixels (speed/detail trade-off)")
    command.add_argument("--max-people", type=positive_int, default=max_people, metavar="N",
                         help=f"parse up to N people, each with a stable ID (default {max_people}; "
                              "1 = single-person mode, the fastest)")
    command.add_argument("--person-mask", default=default("person_mask"), choices=PERSON_MASK_SOURCES,
                         metavar="SOURCE",
                         help="what makes the person mask: 'auto' (default) = 'pose' when BlazePose runs (--pose "
                              "auto), else 'selfie'; 'pose': BlazePose's per-person segmentation averaged with "
                              "MediaPipe's selfie segmenter and refined along the frame's edges (the most "
                              "accurate; the parser keeps the part labels); 'selfie' or a Human_seg network "
                              f"({', '.join(n for n in PERSON_MASK_SOURCES if n.startswith('humanseg'))}): the "
                              "parser's mask moved towards that segmenter's; 'parser': the parser's own")
    if not parts:
        return
    command.add_argument("--parts", default=default("parts"), choices=PARTS_MODES,
                         help="BodyPix's body parts from the whole frame, or top-down: BodyPix again on each "
                              "person's crop at the full network input (sharper parts on people far from the "
                              f"camera, one more batched pass; default {default('parts')})")


def people_options(command: argparse.ArgumentParser) -> None:
    """--people SOURCE, --people-weights FILE, --people-size PIXELS."""
    command.add_argument("--people", default=default("people"), choices=PEOPLE_SOURCES,
                         help="where several people come from: the parser's own people, or a multi-person model "
                              "whose person instances split the parser's parts among people (default parser)")
    command.add_argument("--people-weights", metavar="FILE",
                         help="load the --people model from this file instead of the weights cache")
    command.add_argument("--people-size", type=positive_int, metavar="PIXELS",
                         help="the --people model's internal size (default: its own, e.g. 800 short side)")


def smoothing_option(command: argparse.ArgumentParser, smoothing: float | None = default("smoothing")) -> None:
    """--smoothing STRENGTH (None: the window's last used)."""
    command.add_argument("--smoothing", type=smoothing_strength, default=smoothing, metavar="STRENGTH",
                         help="temporal smoothing of parts and keypoints, 0 (off) to 1 "
                              f"(default {smoothing if smoothing is not None else 'the last one used'})")


def max_side_option(command: argparse.ArgumentParser, default_px: int | None, *, size_option: bool = True) -> None:
    """--max-side; `size_option`: the command also has --size, which wins."""
    command.add_argument("--max-side", type=non_negative_int, default=default_px, metavar="PIXELS",
                         help="scale larger frames down so their long side is at most PIXELS, aspect kept "
                              f"(default {default_px or 'off'}; 0 = off{'; --size wins' if size_option else ''})")


def stage_threads_option(command: argparse.ArgumentParser) -> None:
    """--stage-threads N (PipelineConfig.stage_threads)."""
    command.add_argument("--stage-threads", type=non_negative_int, default=default("stage_threads"), metavar="N",
                         help="threads running the parser, the stages and the drawing, consecutive frames "
                              "overlapping (default 0: one per step; 1: every step of a frame before the next)")


def realtime_option(command: argparse.ArgumentParser) -> None:
    """--realtime (PipelineConfig.pacing "realtime")."""
    command.add_argument("--realtime", action="store_true", help="pace a file like a camera and drop late frames")


def parse_side_option(command: argparse.ArgumentParser) -> None:
    """--parse-side PIXELS (PipelineConfig.parse_side; 0 = None)."""
    command.add_argument("--parse-side", type=non_negative_int, default=default("parse_side"), metavar="PIXELS",
                         help="parse frames longer than PIXELS on a copy scaled down by a whole factor to fit, "
                              "drawing and recording the results at the frame's size (default "
                              f"{default('parse_side')}; 0 = parse at the frame's size)")
