"""Measures behind `partsight eval`: temporal flicker on a clip, agreement on jittered stills, and
person-mask IoU against ground-truth label maps. Pure functions plus small runners that return
JSON-serialisable dicts."""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.imaging import dense_flow, mask_iou, warp_by_flow
from realtime.models import Parser
from realtime.render import plural
from realtime.sources import SourceError, SourceInfo, open_source, read_image_file
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult

Stage = Callable[[Frame, ParseResult], ParseResult]


# --- flicker -------------------------------------------------------------------------------
def flow_to_previous(previous_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """H x W x 2 dense flow (OpenCV DIS, medium preset) from each pixel of `rgb` to where it
    was in `previous_rgb`."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dense_flow(dis, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY))


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The previous label map pulled along `flow` (from flow_to_previous) onto the current frame."""
    return warp_by_flow(labels, flow, cv2.INTER_NEAREST, border_value=0)


def label_flicker(warped_previous: np.ndarray, labels: np.ndarray) -> float:
    """Share of pixels in the union of both person regions whose label changed (0 when neither
    frame has a person)."""
    union = (warped_previous > 0) | (labels > 0)
    count = int(union.sum())
    return float((warped_previous[union] != labels[union]).sum() / count) if count else 0.0


def file_frames(spec: str, *, size: tuple[int, int] | None = None, limit: int | None = None,
                problems: list[str] | None = None, skipped: list[str] | None = None,
                opened: Callable[[SourceInfo], None] | None = None) -> Iterator[Frame]:
    """Every frame of a video file or image folder, in order (of a live source: those it gives,
    up to `limit`). A source that fails before any frame raises SourceError; one that fails
    later ends the frames, its message appended to `problems` when given (else raised). The names of an image folder's files skipped as
    unreadable among the frames read (Source.skipped) are appended to `skipped` when given, once the frames end.
    `opened` is called with the source's SourceInfo once it opened: what it raises ends the frames."""
    source = open_source(spec, size=size)
    info = source.start()
    count = 0
    try:
        if opened is not None:
            opened(info)
        while limit is None or count < limit:
            frame = source.read(timeout_s=1.0)
            if frame is None:
                if source.finished or source.error:
                    break
                continue
            count += 1
            yield frame
    finally:
        source.stop()
        if skipped is not None:
            skipped.extend(source.skipped)
    if source.error:
        if problems is None or not count:
            raise SourceError(source.error)
        problems.append(source.error)


def evaluate_flicker(parser: Parser, frames: Iterator[Frame], smoother: Stage, *, stages: Sequence[Stage] = ()) -> dict:
    """Mean flicker of the raw per-frame labels and of the smoother's labels over a clip, how
    closely the smoothed person mask stays on the frame's own (`smoothed_person_iou_to_raw`,
    mean and worst frame: a smoother that lags leaves moving limbs out and ghosts behind), and
    milliseconds per frame for parsing and for smoothing. `stages` (the person-mask stages) run
    on every parse before the smoother; their time counts as parsing."""
    flicker: dict[str, list[float]] = {"raw": [], "smoothed": []}
    to_raw: list[float] = []
    parse_ms, smooth_ms = [], []
    previous: tuple[Frame, dict[str, np.ndarray]] | None = None
    for frame in frames:
        start = time.perf_counter()
        raw = run_stages(stages, frame, parser.parse(frame.image))
        parsed = time.perf_counter()
        smoothed = smoother(frame, raw)
        parse_ms.append((parsed - start) * 1000)
        smooth_ms.append((time.perf_counter() - parsed) * 1000)
        to_raw.append(mask_iou(smoothed.person_mask, raw.person_mask))
        labels = {"raw": raw.labels, "smoothed": smoothed.labels}
        if previous is not None:
            flow = flow_to_previous(previous[0].image, frame.image)
            for kind, values in flicker.items():
                values.append(label_flicker(warp_labels(previous[1][kind], flow), labels[kind]))
        previous = (frame, labels)
    if not flicker["raw"]:
        raise ValueError("flicker needs at least two frames")
    return {
        "frames": len(parse_ms),
        "flicker": {kind: round(statistics.mean(values), 4) for kind, values in flicker.items()},
        "smoothed_person_iou_to_raw": {"mean": round(statistics.mean(to_raw), 4),
                                       "worst": round(min(to_raw), 4)},
        "ms_per_frame": {"parse": _median_ms(parse_ms), "smooth": _median_ms(smooth_ms)},
    }


# --- jittered stills -----------------------------------------------------------------------
@dataclass(frozen=True)
class JitterMotion:
    """Limits of the smooth random motion applied to a still."""

    max_shift: float = 0.10  # of the image's width / height
    max_scale: float = 0.10  # +- relative
    max_rotation_deg: float = 5.0
    noise_sigma: float = 3.0  # grey levels of Gaussian noise added to every frame


def smooth_affine_track(size_wh: tuple[int, int], frames: int, rng: np.random.Generator,
                        motion: JitterMotion = JitterMotion()) -> list[np.ndarray]:
    """`frames` 2 x 3 affine matrices of a smooth random motion about the image centre: each of
    shift x/y, scale and rotation is a sum of three slow sines (0.3..2 cycles over the clip)
    scaled to its limit."""
    width, height = size_wh
    t = np.linspace(0.0, 1.0, frames)

    def wave(limit: float) -> np.ndarray:
        cycles = rng.uniform(0.3, 2.0, 3)
        phases = rng.uniform(0, 2 * math.pi, 3)
        signal = sum(np.sin(2 * math.pi * c * t + p) for c, p in zip(cycles, phases))
        return signal / max(np.abs(signal).max(), 1e-9) * limit * rng.uniform(0.6, 1.0)

    shift_x, shift_y = wave(motion.max_shift * width), wave(motion.max_shift * height)
    scale, rotation = 1.0 + wave(motion.max_scale), wave(motion.max_rotation_deg)
    centre = ((width - 1) / 2, (height - 1) / 2)
    tracks = []
    for i in range(frames):
        matrix = cv2.getRotationMatrix2D(centre, float(rotation[i]), float(scale[i]))
        matrix[:, 2] += (shift_x[i], shift_y[i])
        tracks.append(matrix)
    return tracks


def jittered_frames(still: np.ndarray, track: Sequence[np.ndarray], rng: np.random.Generator,
                    noise_sigma: float) -> Iterator[tuple[Frame, np.ndarray]]:
    """(frame, valid mask) for each affine of `track`: the still moved, plus noise; the mask
    marks pixels that come from inside the still."""
    height, width = still.shape[:2]
    ones = np.ones((height, width), np.uint8)
    for index, matrix in enumerate(track):
        moved = cv2.warpAffine(still, matrix, (width, height), flags=cv2.INTER_LINEAR)
        noisy = np.clip(moved + rng.normal(0.0, noise_sigma, moved.shape), 0, 255).astype(np.uint8)
        valid = cv2.warpAffine(ones, matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
        yield Frame(noisy, index, index / 30.0), valid


def agreement(labels: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """(person IoU, part accuracy) of `labels` against `reference` inside `valid`; part accuracy
    is the share of pixels in either person region with the same label."""
    person, truth = (labels > 0) & valid, (reference > 0) & valid
    union = person | truth
    count = int(union.sum())
    if not count:
        return 1.0, 1.0
    return float((person & truth).sum() / count), float((labels[union] == reference[union]).sum() / count)


def evaluate_jitter(parser: Parser, stills: Sequence[np.ndarray], make_smoother: Callable[[], Stage], *,
                    frames: int = 45, seed: int = 0, motion: JitterMotion = JitterMotion(),
                    stages: Sequence[Stage] = ()) -> dict:
    """Agreement of raw and smoothed labels with the still's own parse moved by the known motion,
    averaged over all frames of all stills. `stages` (the person-mask stages) run on every parse,
    the still's included, before the smoother."""
    rng = np.random.default_rng(seed)
    scores: dict[str, list[tuple[float, float]]] = {"raw": [], "smoothed": []}
    for still in stills:
        height, width = still.shape[:2]
        reference_labels = run_stages(stages, Frame(still, 0, 0.0), parser.parse(still)).labels
        track = smooth_affine_track((width, height), frames, rng, motion)
        smoother = make_smoother()
        for (frame, valid), matrix in zip(jittered_frames(still, track, rng, motion.noise_sigma), track):
            reference = cv2.warpAffine(reference_labels, matrix, (width, height), flags=cv2.INTER_NEAREST)
            raw = run_stages(stages, frame, parser.parse(frame.image))
            smoothed = smoother(frame, raw)
            scores["raw"].append(agreement(raw.labels, reference, valid))
            scores["smoothed"].append(agreement(smoothed.labels, reference, valid))
    return {
        "stills": len(stills),
        "frames_per_still": frames,
        "seed": seed,
        **{kind: {"person_iou": round(statistics.mean(s[0] for s in values), 4),
                  "part_accuracy": round(statistics.mean(s[1] for s in values), 4)}
           for kind, values in scores.items()},
    }


# --- person IoU on labelled images ---------------------------------------------------------
@dataclass(frozen=True)
class LabelledImage:
    image: Path
    label: Path
    name: str  # the image's path under the dataset folder, with "/" (as reports name it)


def labelled_images(root: str | Path, *, unmatched: list[str] | None = None) -> list[LabelledImage]:
    """Image / label pairs under `root`, in the layouts of the shared datasets: LIP
    (img_X.jpg + label_X.png), CIHP (X.jpg + X_label.png), skin_clothes_hair (img_X.png +
    ann_X.png). The label files of these layouts with no image beside them are left out, their
    paths relative to `root` appended to `unmatched` when given. Raises ValueError when there are
    no pairs (naming how many labels lacked their images)."""
    root = Path(root)
    pairs = []
    lacking = []
    for label in sorted(path for path in root.rglob("*.png") if path.is_file()):
        name = label.name
        if name.startswith("label_"):
            candidates = [label.with_name("img_" + name[6:-4] + ext) for ext in (".jpg", ".png")]
        elif name.endswith("_label.png"):
            candidates = [label.with_name(name[:-10] + ext) for ext in (".jpg", ".png")]
        elif name.startswith("ann_"):
            candidates = [label.with_name("img_" + name[4:-4] + ext) for ext in (".png", ".jpg")]
        else:
            continue
        image = next((c for c in candidates if c.is_file()), None)
        if image is not None:
            pairs.append(LabelledImage(image, label, image.relative_to(root).as_posix()))
        else:
            lacking.append(label.relative_to(root).as_posix())
    if not pairs:
        raise ValueError(f"{root}: no labelled images (label_*.png, *_label.png or ann_*.png with their images)"
                         f"{': ' + labels_without_images_words(len(lacking)) if lacking else ''}")
    if unmatched is not None:
        unmatched.extend(lacking)
    return pairs


def labels_without_images_words(count: int) -> str:
    """'1 label without its image', '2 labels without their images'."""
    return f"{plural(count, 'label')} without {'its image' if count == 1 else 'their images'}"


def read_rgb(path: str | Path) -> np.ndarray:
    """The image file as H x W x 3 uint8 RGB, upright by its EXIF orientation (read_image_file);
    ValueError naming the file when it cannot be read or decoded."""
    image = read_image_file(path)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_person_truth(path: str | Path) -> np.ndarray:
    """H x W bool: any non-background label. Palette PNGs come out of OpenCV as colours, and
    class 0's colour is black in every dataset here."""
    label = read_image_file(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"{path}: not a readable label image")
    return label.any(axis=2) if label.ndim == 3 else label > 0


def evaluate_person_iou(parse: Callable[[np.ndarray], ParseResult], images: Sequence[LabelledImage], *,
                        baseline: Callable[[np.ndarray], object] | None = None) -> dict:
    """Mean person-mask IoU of `parse(rgb)`'s person mask over labelled images, with the
    per-image figures (`per_image`: each image's LabelledImage.name, iou, subject_iou), the means of the two halves (`halves`: the images at even and at odd
    positions of `images`, one to choose settings on, the other held out) and the median wall
    and CPU milliseconds per image (CPU: this process, all threads).

    `subject_iou` (mean and halves) scores the one parsed person whose mask overlaps the label
    best (IoU; the whole person mask when the parse has no people): for datasets that label one
    subject per photo (CCP, LIP), where other people found in the photo count against the
    person mask's IoU though they are people.

    With `baseline` (e.g. the parser alone), that is timed too on each image right after, and
    `ms_ratio_to_baseline` / `cpu_ratio_to_baseline` compare the two (load on a shared machine
    hits both alike)."""
    rows, times, baseline_times = [], [], []
    for item in images:
        rgb = read_rgb(item.image)
        truth = read_person_truth(item.label)
        if truth.shape != rgb.shape[:2]:
            raise ValueError(f"{item.label}: label size differs from {item.image}")
        parse(rgb)  # the first call at a new size may build and cache the model's graph
        result, ms = _timed(parse, rgb)
        times.append(ms)
        if baseline is not None:
            baseline_times.append(_timed(baseline, rgb)[1])
        iou = mask_iou(result.person_mask, truth)
        subject = max((mask_iou(person.mask, truth) for person in result.people), default=iou)
        rows.append({"image": item.name, "iou": round(iou, 4),
                     "subject_iou": round(subject, 4)})
    report = {
        "images": len(rows),
        "mean_iou": _mean_iou(rows),
        "halves": {"even": _mean_iou(rows[0::2]), "odd": _mean_iou(rows[1::2])},
        "subject_iou": {"mean": _mean_iou(rows, "subject_iou"), "even": _mean_iou(rows[0::2], "subject_iou"),
                        "odd": _mean_iou(rows[1::2], "subject_iou")},
        "ms_per_image": _median_ms([wall for wall, _ in times]),
        "cpu_ms_per_image": _median_ms([cpu for _, cpu in times]),
    }
    if baseline_times:
        report["baseline_ms_per_image"] = _median_ms([wall for wall, _ in baseline_times])
        report["baseline_cpu_ms_per_image"] = _median_ms([cpu for _, cpu in baseline_times])
        report["ms_ratio_to_baseline"] = round(report["ms_per_image"] / report["baseline_ms_per_image"], 3)
        report["cpu_ratio_to_baseline"] = round(report["cpu_ms_per_image"] / max(report["baseline_cpu_ms_per_image"],
                                                                                 0.01), 3)
    return {**report, "per_image": rows}


def _timed(call: Callable[[np.ndarray], object], rgb: np.ndarray) -> tuple[object, tuple[float, float]]:
    """call(rgb) and its (wall ms, CPU ms of this process)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = call(rgb)
    return out, ((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000)


def _mean_iou(rows: list[dict], key: str = "iou") -> float | None:
    return round(statistics.mean(r[key] for r in rows), 4) if rows else None


def run_stages(stages: Sequence[ResultStage], frame: Frame, parse: ParseResult, *, still: bool = False) -> ParseResult:
    """`parse` through `stages`, in order; `still`: a photo unrelated to the last one, so the
    stages forget what they tracked first (the pose stage detects people afresh)."""
    for stage in stages:
        if still:
            stage.reset()
        parse = stage(frame, parse)
    return parse


def _median_ms(values: Sequence[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


# --- body-part IoU on labelled images ------------------------------------------------------
# PASCAL-Person-Part's parts (ids of labels.PASCAL_PERSON_PARTS: 1 head, 2 torso, 3 upper arms,
# 4 lower arms, 5 upper legs, 6 lower legs) for each of BodyPix's 25 ids (labels.BODYPIX_PARTS):
# faces -> head, hands -> lower arms, feet -> lower legs.
BODYPIX_TO_PASCAL_PARTS = np.array([0, 1, 1, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 2, 2, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6], np.uint8)
# LIP / CIHP ground truth (20 ids, labels.LIP_PARTS) marks clothes, not limbs: a sleeve is
# upper_clothes, trousers are pants. Scored on the four regions both conventions share (1 head,
# 2 torso, 3 arms, 4 legs): clothes on the trunk -> torso, gloves -> arms, pants, skirts, socks
# and shoes -> legs.
LIP_TO_REGIONS = np.array([0, 1, 1, 3, 1, 2, 2, 2, 4, 4, 2, 2, 4, 1, 3, 3, 4, 4, 4, 4], np.uint8)
PASCAL_PARTS_TO_REGIONS = np.array([0, 1, 2, 3, 3, 4, 4], np.uint8)
PART_LABEL_FORMATS = {
    # format: (names of the scored classes 1..N, ground truth ids -> scored ids, PASCAL parts -> scored ids)
    "pascal-person-part": (("head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"),
                           np.arange(7, dtype=np.uint8), np.arange(7, dtype=np.uint8)),
    "lip": (("head", "torso", "arms", "legs"), LIP_TO_REGIONS, PASCAL_PARTS_TO_REGIONS),
}


def read_class_ids(path: str | Path) -> np.ndarray:
    """H x W uint8 class ids of a single-channel label PNG (grey values are the ids)."""
    label = read_image_file(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"{path}: not a readable label image")
    if label.ndim != 2:
        raise ValueError(f"{path}: a colour or palette image, not a single-channel label image of class ids "
                         "(grey values); person masks are for eval person-iou")
    return label.astype(np.uint8)


@dataclass
class PartIoU:
    """Dataset-level IoU per class: intersections and unions summed over every image, so a large
    person weighs more than a small one (the PASCAL-Person-Part convention)."""

    names: tuple[str, ...]
    intersection: np.ndarray
    union: np.ndarray

    @classmethod
    def empty(cls, names: tuple[str, ...]) -> PartIoU:
        return cls(names, np.zeros(len(names), np.int64), np.zeros(len(names), np.int64))

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Adds one image: `predicted` and `truth` are H x W integer class-id maps of one shape,
        0 the background and index + 1 the class `names[index]` (other ids count for no class)."""
        for index in range(len(self.names)):
            p, t = predicted == index + 1, truth == index + 1
            self.intersection[index] += int((p & t).sum())
            self.union[index] += int((p | t).sum())

    def report(self) -> dict:
        """{"miou": mean over classes seen in the truth or the predictions, "per_class": {...}}."""
        seen = self.union > 0
        per_class = {name: round(float(i / u), 4) if u else None
                     for name, i, u in zip(self.names, self.intersection, self.union)}
        miou = float(np.mean(self.intersection[seen] / self.union[seen])) if seen.any() else 0.0
        return {"miou": round(miou, 4), "per_class": per_class}


def _class_ids_of(path: Path, label_format: str) -> np.ndarray:
    """read_class_ids of `path`; ValueError naming its highest value when that is not a class of
    `label_format`, and the formats whose classes hold every value of the map."""
    ids = read_class_ids(path)
    highest = int(ids.max())
    classes = len(PART_LABEL_FORMATS[label_format][1])
    if highest < classes:
        return ids
    fitting = [name for name, (_, truth_map, _) in PART_LABEL_FORMATS.items() if highest < len(truth_map)]
    hint = f"; its values fit --labels {' or '.join(fitting)}" if fitting else ""
    raise ValueError(f"{path}: label value {highest} is not a class of --labels {label_format} "
                     f"(0-{classes - 1}){hint}")


def evaluate_part_iou(parsers: dict[str, Callable[[np.ndarray], np.ndarray]], images: Sequence[LabelledImage],
                      label_format: str) -> dict:
    """Body-part IoU of each `parsers[name](rgb) -> H x W BodyPix ids` against the labelled images,
    in `label_format` ("pascal-person-part": six parts; "lip": LIP/CIHP ids scored on four
    regions), with milliseconds per image. The parsers run on the same images in turn.
    ValueError when a label map holds a value that is not a class of `label_format`."""
    names, truth_map, parts_map = PART_LABEL_FORMATS[label_format]
    scores = {name: PartIoU.empty(names) for name in parsers}
    times: dict[str, list[float]] = {name: [] for name in parsers}
    for item in images:
        rgb = read_rgb(item.image)
        truth = truth_map[_class_ids_of(item.label, label_format)]
        if truth.shape != rgb.shape[:2]:
            raise ValueError(f"{item.label}: label size differs from {item.image}")
        for name, parse in parsers.items():
            parse(rgb)  # the first call at a new size may build and cache the model's graph
            start = time.perf_counter()
            labels = parse(rgb)
            times[name].append((time.perf_counter() - start) * 1000)
            scores[name].add(parts_map[BODYPIX_TO_PASCAL_PARTS[labels]], truth)
    return {"images": len(images), "labels": label_format,
            **{name: {**scores[name].report(), "ms_per_image": _median_ms(times[name])} for name in parsers}}
