"""`partsight eval flicker|jitter|person-iou|part-iou`: the measures of realtime.evaluation as commands
that print one JSON object."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

from realtime.cli_options import (
    frame_size,
    frames_between,
    labels_without_images_field,
    model_options,
    refuse_endless,
    refuse_unreadable,
    smoothing_option,
    unreadable_field,
    warning_field,
)
from realtime.config import OptionsError
from realtime.fitness_cli import pose_option

DATASETS_DIR_ENV = "PARTSIGHT_DATASETS_DIR"
DATASET_HELP = (f"folder of labelled images, read with its subfolders; needed: without it the command lists the "
                f"datasets in ${DATASETS_DIR_ENV}, else in the datasets folder beside $PARTSIGHT_MEDIA_DIR")


def default_datasets_dir() -> Path:
    """$PARTSIGHT_DATASETS_DIR, else the `datasets` folder beside $PARTSIGHT_MEDIA_DIR, else
    ../shared/datasets next to this checkout."""
    if os.environ.get(DATASETS_DIR_ENV):
        return Path(os.environ[DATASETS_DIR_ENV])
    if os.environ.get("PARTSIGHT_MEDIA_DIR"):
        return Path(os.environ["PARTSIGHT_MEDIA_DIR"]).parent / "datasets"
    return Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def add_eval_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help=f"measure {', '.join(MEASURES)} (see 'eval MEASURE --help'); "
                                                "prints JSON")
    measures = evaluate.add_subparsers(dest="eval_command", metavar="MEASURE", required=True)
    for name, add_measure in MEASURES.items():
        add_measure(measures, name)


def _add_flicker(measures: argparse._SubParsersAction, name: str) -> None:
    flicker = measures.add_parser(
        name, help="label flicker of raw vs smoothed parses along a clip's optical flow",
        description="Label flicker of the raw and the smoothed parses along a clip's optical flow: the share (0-1) "
                    "of the pixels in either frame's person region whose label changed from the previous frame "
                    "warped onto this one, averaged over the clip; lower is steadier. smoothed_person_iou_to_raw "
                    "(0-1, mean and worst frame): how closely the smoothed person mask stays on the frame's own.")
    flicker.add_argument("source", help="video file, image folder, webcam index or rtsp:// / http(s):// URL (a "
                                        "webcam or live stream needs --frames)")
    flicker.add_argument("--size", type=frame_size, help="fit frames into WxH first, aspect kept (black bars), e.g. 640x480 (default: as they are)")
    flicker.add_argument("--frames", type=frames_between, help="only the first N frames (at least 2: flicker is a "
                         "change from one frame to the next)")
    model_options(flicker)
    pose_option(flicker, "auto")
    smoothing_option(flicker)
    flicker.set_defaults(handler=_flicker)


def _add_jitter(measures: argparse._SubParsersAction, name: str) -> None:
    jitter = measures.add_parser(
        name, help="raw vs smoothed agreement on stills moved by a known smooth motion",
        description="Raw and smoothed labels on stills moved by a known smooth random motion, against the still's "
                    "own parse moved the same way: person_iou and part_accuracy (the share of the pixels in either "
                    "person region with the same label), both 0-1 and higher is better, averaged over every frame.")
    jitter.add_argument("images", nargs="*", help="still images (default: every image of --dataset)")
    jitter.add_argument("--dataset", type=Path, help=f"{DATASET_HELP} (or give IMAGES)")
    jitter.add_argument("--jitter-frames", "--frames", dest="jitter_frames", type=frames_between, default=45,
                        help="frames of motion per still (at least 2; default 45)")
    jitter.add_argument("--seed", type=int, default=0,
                        help="seed of the random motion and noise: the same seed moves the stills the same way "
                             "(default 0)")
    model_options(jitter)
    pose_option(jitter, "auto")
    smoothing_option(jitter)
    jitter.set_defaults(handler=_jitter)


def _add_person_iou(measures: argparse._SubParsersAction, name: str) -> None:
    person_iou = measures.add_parser(name, help="person-mask IoU against ground-truth label maps (with the "
                                                "two halves' means, subject_iou: the IoU of the parsed "
                                                "person who overlaps the label best, and the time per "
                                                "image against the parser alone)")
    person_iou.add_argument("--dataset", type=Path, help=DATASET_HELP)
    model_options(person_iou)
    pose_option(person_iou, "auto")
    person_iou.set_defaults(handler=_person_iou)


def _add_part_iou(measures: argparse._SubParsersAction, name: str) -> None:
    part_iou = measures.add_parser(name, help="body-part IoU of BodyPix's parts, full-frame vs top-down, "
                                              "against ground-truth label maps")
    part_iou.add_argument("dataset", type=Path, help="folder of labelled images (label_X.png / X_label.png / ann_X.png "
                                                    "beside the image)")
    part_iou.add_argument("--labels", default="pascal-person-part", choices=("pascal-person-part", "lip"),
                          help="what the label maps hold: PASCAL-Person-Part's six parts (scored on them), or "
                               "LIP/CIHP's 20 classes (scored on head, torso, arms, legs)")
    model_options(part_iou, parts=False)  # both modes are scored, in one run
    pose_option(part_iou, "auto")
    part_iou.set_defaults(handler=_part_iou)


# the measures `eval` runs, by name: each adds its subcommand (and `partsight --help` lists them)
MEASURES = {"flicker": _add_flicker, "jitter": _add_jitter, "person-iou": _add_person_iou, "part-iou": _add_part_iou}


def _part_iou(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from realtime.build import build_parser, parts_stages, person_mask_chain
    from realtime.config import config_from_args
    from realtime.evaluation import evaluate_part_iou, labelled_images, run_stages
    from realtime.types import Frame

    dataset = _folder(args.dataset, str(args.dataset))
    config = config_from_args(args)
    unmatched: list[str] = []
    images = labelled_images(dataset, unmatched=unmatched)
    parser = build_parser(config)
    masks = person_mask_chain(config)
    top_down = parts_stages(replace(config, parts="top-down"))

    def labels(stages):
        return lambda rgb: run_stages(stages, Frame(rgb, 0, 0.0), parser.parse(rgb), still=True).labels

    report = evaluate_part_iou({"full_frame": labels(masks), "top_down": labels([*masks, *top_down])}, images,
                               args.labels)
    print(json.dumps({**_model_fields(parser, config, masks, smoothing=False), **report,
                      **labels_without_images_field(unmatched, report["images"])}))
    return 0


def _dataset(args: argparse.Namespace) -> Path:
    """--dataset; without it, ValueError naming the datasets in default_datasets_dir() (read as one,
    they would mix, and the run is long)."""
    from realtime.evaluation import labelled_images
    from realtime.render import plural

    if args.dataset is not None:
        return _folder(args.dataset, f"--dataset {args.dataset}")
    root = default_datasets_dir()
    found = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []:
        with contextlib.suppress(ValueError):  # no labelled images in it
            found.append((folder, len(labelled_images(folder))))
    if not found:
        raise OptionsError(f"pass --dataset DIR: no datasets of labelled images in {root} (set {DATASETS_DIR_ENV})")
    listed = ", ".join(f"{folder.name} ({plural(count, 'image')})" for folder, count in found)
    raise OptionsError(f"pass --dataset DIR, one of the datasets in {root}: {listed}; e.g. --dataset {found[0][0]}")


def _folder(path: Path, shown: str) -> Path:
    """`path` when it is a folder; else ValueError "`shown`: no such folder" or "`shown` is not a
    folder" (`shown`: how the command line gave it)."""
    if not path.is_dir():
        raise ValueError(f"{shown} is not a folder" if path.exists() else f"{shown}: no such folder")
    return path


def _model_fields(parser, config, person_mask: list, *, smoothing: bool = True) -> dict:
    return {"model": parser.spec.name, "device": str(parser.device), "backend": getattr(parser, "backend", "torch"),
            "dtype": config.dtype,
            "internal_size": parser.internal_size,
            "max_people": config.max_people, "person_mask": " + ".join(stage.name for stage in person_mask) or "parser",
            **({"smoothing": config.smoothing} if smoothing else {})}


def _flicker(args: argparse.Namespace) -> int:
    from realtime.build import build_parser, person_mask_chain
    from realtime.config import config_from_args
    from realtime.evaluation import evaluate_flicker, file_frames
    from realtime.smoothing import TemporalSmoother

    config = config_from_args(args)
    parser = build_parser(config)
    stages = person_mask_chain(config)
    problems: list[str] = []
    skipped: list[str] = []

    def opened(info) -> None:
        if info.live:
            refuse_endless(args.frames, info.name, "a live source")

    frames = file_frames(config.source, size=config.size, limit=config.frame_limit, problems=problems,
                         skipped=skipped, opened=opened)
    report = evaluate_flicker(parser, frames, TemporalSmoother(config.smoothing), stages=stages)
    print(json.dumps({"source": Path(args.source).name, **_model_fields(parser, config, stages), **report,
                      **warning_field(problems[0] if problems else None), **unreadable_field(skipped)}))
    refuse_unreadable(skipped, report["frames"])
    return 0


def _jitter(args: argparse.Namespace) -> int:
    from realtime.build import build_parser, person_mask_chain
    from realtime.config import config_from_args
    from realtime.evaluation import evaluate_jitter, labelled_images, read_rgb
    from realtime.smoothing import TemporalSmoother

    config = config_from_args(args)
    unmatched: list[str] = []
    paths = [Path(p) for p in args.images] or [item.image for item in labelled_images(_dataset(args),
                                                                                      unmatched=unmatched)]
    stills = [read_rgb(path) for path in paths]
    parser = build_parser(config)
    stages = person_mask_chain(config)
    report = evaluate_jitter(parser, stills, lambda: TemporalSmoother(config.smoothing), frames=args.jitter_frames,
                             seed=args.seed, stages=stages)
    print(json.dumps({**_model_fields(parser, config, stages), **report,
                      **labels_without_images_field(unmatched, report["stills"])}))
    return 0


def _person_iou(args: argparse.Namespace) -> int:
    from realtime.build import build_parser, person_mask_chain
    from realtime.config import config_from_args
    from realtime.evaluation import evaluate_person_iou, labelled_images, run_stages
    from realtime.types import Frame

    config = config_from_args(args)
    unmatched: list[str] = []
    images = labelled_images(_dataset(args), unmatched=unmatched)
    parser = build_parser(config)
    stages = person_mask_chain(config)

    report = evaluate_person_iou(
        lambda rgb: run_stages(stages, Frame(rgb, 0, 0.0), parser.parse(rgb), still=True), images,
        baseline=parser.parse)
    print(json.dumps({**_model_fields(parser, config, stages, smoothing=False), **report,
                      **labels_without_images_field(unmatched, report["images"])}))
    return 0
