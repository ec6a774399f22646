"""`partsight eval flicker|jitter|person-iou`: the measures of realtime.evaluation as commands
that print one JSON object."""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from realtime.models.selfie_mask import person_mask_stages
from realtime.smoothing import DEFAULT_STRENGTH

DATASETS_DIR_ENV = "PARTSIGHT_DATASETS_DIR"


def smoothing_strength(text: str) -> float:
    """argparse type for --smoothing: a number from 0 (off) to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 (off) to 1, not '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 (off) to 1, not {value:g}")
    return value


def default_datasets_dir() -> Path:
    """$PARTSIGHT_DATASETS_DIR, else the `datasets` folder beside $PARTSIGHT_MEDIA_DIR, else
    ../shared/datasets next to this checkout."""
    if os.environ.get(DATASETS_DIR_ENV):
        return Path(os.environ[DATASETS_DIR_ENV])
    if os.environ.get("PARTSIGHT_MEDIA_DIR"):
        return Path(os.environ["PARTSIGHT_MEDIA_DIR"]).parent / "datasets"
    return Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def add_eval_commands(commands: argparse._SubParsersAction,
                      model_options: Callable[[argparse.ArgumentParser], None]) -> None:
    evaluate = commands.add_parser("eval", help="measure flicker, lag on jittered stills, person-mask IoU; prints JSON")
    measures = evaluate.add_subparsers(dest="eval_command", required=True)

    def smoothing_option(command: argparse.ArgumentParser) -> None:
        command.add_argument("--smoothing", type=smoothing_strength, default=DEFAULT_STRENGTH,
                             help=f"strength of the smoother compared with the raw output (default {DEFAULT_STRENGTH})")

    flicker = measures.add_parser("flicker", help="label flicker of raw vs smoothed parses along a clip's optical flow")
    flicker.add_argument("source", help="video file or image folder")
    flicker.add_argument("--size", help="scale frames to WxH first, e.g. 640x480 (default: as they are)")
    flicker.add_argument("--frames", type=int, help="only the first N frames")
    smoothing_option(flicker)
    model_options(flicker)
    flicker.set_defaults(handler=_flicker)

    jitter = measures.add_parser("jitter", help="raw vs smoothed agreement on stills moved by a known smooth motion")
    jitter.add_argument("images", nargs="*", help="still images (default: every image of --dataset)")
    jitter.add_argument("--dataset", type=Path, help=f"labelled images folder (default ${DATASETS_DIR_ENV} or ../shared/datasets)")
    jitter.add_argument("--frames", type=int, default=45, help="frames of motion per still (default 45)")
    jitter.add_argument("--seed", type=int, default=0)
    smoothing_option(jitter)
    model_options(jitter)
    jitter.set_defaults(handler=_jitter)

    person_iou = measures.add_parser("person-iou", help="person-mask IoU against ground-truth label maps")
    person_iou.add_argument("--dataset", type=Path, help=f"labelled images folder (default ${DATASETS_DIR_ENV} or ../shared/datasets)")
    model_options(person_iou)
    person_iou.set_defaults(handler=_person_iou)


def _load(args: argparse.Namespace):
    from realtime.models import load_parser

    return load_parser(args.model, device=args.device, weights=args.weights, internal_size=args.internal_size)


def _dataset(args: argparse.Namespace) -> Path:
    folder = args.dataset or default_datasets_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; pass --dataset DIR or set {DATASETS_DIR_ENV}")
    return folder


def _model_fields(parser, args: argparse.Namespace, person_mask: list) -> dict:
    return {"model": parser.spec.name, "device": str(parser.device), "internal_size": parser.internal_size,
            "person_mask": person_mask[0].name if person_mask else "parser",
            **({"smoothing": args.smoothing} if hasattr(args, "smoothing") else {})}


def _flicker(args: argparse.Namespace) -> int:
    from realtime.evaluation import evaluate_flicker, file_frames
    from realtime.smoothing import TemporalSmoother
    from realtime.sources import parse_size

    size = parse_size(args.size)
    parser = _load(args)
    stages = person_mask_stages(args.person_mask)
    report = evaluate_flicker(parser, file_frames(args.source, size=size, limit=args.frames),
                              TemporalSmoother(args.smoothing), stages=stages)
    print(json.dumps({"source": Path(args.source).name, **_model_fields(parser, args, stages), **report}))
    return 0


def _jitter(args: argparse.Namespace) -> int:
    from realtime.evaluation import evaluate_jitter, labelled_images, read_rgb
    from realtime.smoothing import TemporalSmoother

    if args.frames < 2:
        raise ValueError("--frames must be at least 2")
    paths = [Path(p) for p in args.images] or [item.image for item in labelled_images(_dataset(args))]
    stills = [read_rgb(path) for path in paths]
    parser = _load(args)
    stages = person_mask_stages(args.person_mask)
    report = evaluate_jitter(parser, stills, lambda: TemporalSmoother(args.smoothing), frames=args.frames,
                             seed=args.seed, stages=stages)
    print(json.dumps({**_model_fields(parser, args, stages), **report}))
    return 0


def _person_iou(args: argparse.Namespace) -> int:
    from realtime.evaluation import evaluate_person_iou, labelled_images, run_stages
    from realtime.types import Frame

    images = labelled_images(_dataset(args))
    parser = _load(args)
    stages = person_mask_stages(args.person_mask)

    report = evaluate_person_iou(lambda rgb: run_stages(stages, Frame(rgb, 0, 0.0), parser.parse(rgb)).person_mask,
                                 images)
    print(json.dumps({**_model_fields(parser, args, stages), **report}))
    return 0
