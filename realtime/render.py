"""Presentation: annotators (small drawing steps with their style set once, each
`annotate(scene, result) -> scene`) and the FrameRenderer that draws a FrameResult with them
as its ViewSettings say.

Scenes are H x W x 3 uint8 RGB arrays; annotators draw on a copy unless told `in_place`. Text
sits in fixed slots that never overlap: the speed readout top left, the part legend top right,
the analysis (repetitions) bottom left; person labels go above each person, or beside them,
wherever no slot is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Sequence

import cv2
import numpy as np

from realtime.models.labels import COCO_SKELETON
from realtime.types import FrameResult, ParseResult


class Annotator(Protocol):
    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray: ...


@dataclass
class PartOverlay:
    """Blends each visible part's palette colour over the scene at `opacity`.

    `visible` is a bool per class id (background is never drawn); None shows every part.
    """

    opacity: float = 0.6
    visible: np.ndarray | None = None
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray:
        palette = result.palette
        shown = np.ones(len(palette), dtype=bool) if self.visible is None else np.asarray(self.visible, dtype=bool)
        if len(shown) != len(palette):
            raise ValueError(f"visibility has {len(shown)} entries for {len(palette)} classes")
        color_lut = np.zeros((256, 1, 3), dtype=np.uint8)
        color_lut[: len(palette), 0] = palette
        mask_lut = np.zeros(256, dtype=np.uint8)
        mask_lut[: len(palette)] = np.where(shown, 255, 0)
        mask_lut[0] = 0
        out = _canvas(scene, self.in_place)
        x, y, w, h = cv2.boundingRect(result.labels)  # only the box around the parts is blended
        if not w:
            return out
        box = np.s_[y:y + h, x:x + w]
        labels = result.labels[box]
        mask = cv2.LUT(labels, mask_lut)
        colors = cv2.LUT(cv2.merge([labels, labels, labels]), color_lut)
        blended = cv2.addWeighted(scene[box], 1.0 - self.opacity, colors, self.opacity, 0.0)
        cv2.copyTo(blended, mask, out[box])
        return out


@dataclass
class KeypointAnnotator:
    """Draws the COCO skeleton and joints whose score reaches `min_score`."""

    min_score: float = 0.3
    skeleton: Sequence[tuple[int, int]] = COCO_SKELETON
    joint_color: tuple[int, int, int] = (255, 255, 255)
    bone_color: tuple[int, int, int] = (255, 255, 0)
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        skeletons = [p.keypoints for p in result.people if p.keypoints is not None]
        thickness = max(2, round(max(scene.shape[:2]) / 400))
        for keypoints in skeletons:
            self._draw(out, keypoints, thickness)
        return out

    def _draw(self, scene: np.ndarray, keypoints: np.ndarray, thickness: int) -> None:
        confident = keypoints[:, 2] >= self.min_score
        points = np.round(keypoints[:, :2]).astype(np.int32)
        for a, b in self.skeleton:
            if a < len(points) and b < len(points) and confident[a] and confident[b]:
                cv2.line(scene, tuple(map(int, points[a])), tuple(map(int, points[b])), self.bone_color,
                         thickness, cv2.LINE_AA)
        for point, ok in zip(points, confident):
            if ok:
                cv2.circle(scene, tuple(map(int, point)), thickness + 2, self.joint_color, -1, cv2.LINE_AA)
                cv2.circle(scene, tuple(map(int, point)), thickness + 2, (0, 0, 0), 1, cv2.LINE_AA)


def person_color(person_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour for a person ID (golden-angle hue steps)."""
    hsv = np.array([[[int(person_id * 137.508 / 2) % 180, 210, 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends) in scene pixels
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_DEGREE = "°"  # Hershey fonts have no degree sign: it is drawn as a small ring


def text_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    """(width, height) in pixels of `text` as `put_text` draws it."""
    parts = text.split(_DEGREE)
    width = sum(cv2.getTextSize(part, _FONT, scale, thickness)[0][0] for part in parts if part)
    height = cv2.getTextSize("Ag", _FONT, scale, thickness)[0][1]
    return width + (len(parts) - 1) * _degree_width(scale), height


def put_text(scene: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int],
             thickness: int) -> None:
    """cv2.putText with the degree sign; `origin` is the baseline's left end."""
    x, y = origin
    cap = cv2.getTextSize("A", _FONT, scale, thickness)[0][1]
    for n, part in enumerate(text.split(_DEGREE)):
        if n:
            radius = max(2, round(cap * 0.18))
            cv2.circle(scene, (x + radius + 1, y - cap + radius), radius, color, max(1, thickness - 1), cv2.LINE_AA)
            x += _degree_width(scale)
        if part:
            cv2.putText(scene, part, (x, y), _FONT, scale, color, thickness, cv2.LINE_AA)
            x += cv2.getTextSize(part, _FONT, scale, thickness)[0][0]


def _degree_width(scale: float) -> int:
    return round(14 * scale)


def plural(count: int, word: str) -> str:
    """'1 rep', '2 reps', '0 reps'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class PersonLabelAnnotator:
    """Outlines each person's mask in their ID's colour and writes "#ID" above their head, or
    beside it where there is no room above (never on the face), keeping out of the `avoid`
    boxes (the text slots). With a selection, the selected people get a thick outline and the
    others a thin one."""

    selected: frozenset[int] | None = None
    avoid: Sequence[Box] = ()
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        height, width = scene.shape[:2]
        base = max(2, round(max(height, width) / 500))
        scale = max(0.6, max(height, width) / 1200)
        taken = list(self.avoid)
        for person in result.people:
            contours, _ = cv2.findContours(person.mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                continue
            left, top, box_w, box_h = cv2.boundingRect(np.concatenate(contours))
            chosen = self.selected is not None and person.id in self.selected
            thickness = base * 2 if chosen else (base if self.selected is None else 1)
            color = person_color(person.id)
            cv2.drawContours(out, contours, -1, color, thickness)
            label = f"#{person.id}" + (" *" if chosen else "")
            text_w, text_h = text_size(label, scale, base)
            tag_w, tag_h = text_w + 8, text_h + 12
            centre = left + box_w // 2 - tag_w // 2
            candidates = [(centre, top - tag_h - 4),  # above the head
                          (left + box_w + 6, top), (left - tag_w - 6, top),  # beside the head
                          (centre, top + box_h + 4), (centre, top - tag_h - 4 + height)]  # below the feet, or anywhere
            for x, y in candidates:
                x, y = min(max(x, 0), max(width - tag_w, 0)), min(max(y, 0), max(height - tag_h, 0))
                tag = (x, y, x + tag_w, y + tag_h)
                inside = person.mask[y:y + tag_h, x:x + tag_w].mean() if tag_w and tag_h else 0.0
                if inside < 0.2 and not any(_overlaps(tag, other) for other in taken):
                    break
            taken.append(tag)
            cv2.rectangle(out, (tag[0], tag[1]), (tag[2] - 1, tag[3] - 1), (0, 0, 0), -1)
            put_text(out, label, (tag[0] + 4, tag[3] - 6), scale, color, base)
        return out


@dataclass
class TextPanel:
    """Lines of text on a translucent dark box in a corner ("top-left", "top-right",
    "bottom-left" or "bottom-right"), below `below_y` pixels from the top for a top corner.
    `scale` None fits the text to the scene: larger on larger scenes, the widest line at most
    `max_share` of the scene's width. A line may start with cells, (text, cells): each cell an
    RGB colour (a swatch), a letter, or "" (blank)."""

    lines: list[str | tuple[str, list]] = field(default_factory=list)
    scale: float | None = None
    corner: str = "top-left"
    max_share: float = 0.6
    below_y: int = 0
    in_place: bool = False

    def box(self, scene_hw: tuple[int, int]) -> Box | None:
        """Where the panel is drawn in a scene of (height, width); None without lines."""
        if not self.lines:
            return None
        height, width = scene_hw
        scale, thickness = self._font(scene_hw)
        line_h, pad, swatch = self._metrics(scale, thickness)
        box_w = min(width, max(self._line_width(line, scale, thickness, swatch) for line in self.lines) + 2 * pad)
        box_h = min(height, line_h * len(self.lines) + pad)
        x0 = width - box_w if self.corner.endswith("right") else 0
        y0 = height - box_h if self.corner.startswith("bottom") else min(self.below_y, max(height - box_h, 0))
        return x0, y0, x0 + box_w, y0 + box_h

    def annotate(self, scene: np.ndarray, result: ParseResult | None = None) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        box = self.box(scene.shape[:2])
        if box is None:
            return out
        x0, y0, x1, y1 = box
        scale, thickness = self._font(scene.shape[:2])
        line_h, pad, swatch = self._metrics(scale, thickness)
        out[y0:y1, x0:x1] = (out[y0:y1, x0:x1] * 0.4).astype(np.uint8)
        for i, line in enumerate(self.lines):
            y = y0 + pad + line_h * (i + 1) - round(8 * scale)
            x = x0 + pad
            if isinstance(line, tuple):
                line, cells = line
                for cell in cells:
                    if isinstance(cell, str) and cell:
                        width = text_size(cell, scale, thickness)[0]
                        put_text(out, cell, (x + (swatch - width) // 2, y), scale, (255, 255, 255), thickness)
                    elif cell:
                        cv2.rectangle(out, (x, y - swatch), (x + swatch, y), tuple(int(c) for c in cell), -1)
                        cv2.rectangle(out, (x, y - swatch), (x + swatch, y), (255, 255, 255), 1)
                    x += swatch + pad // 2
                x += pad // 2
            put_text(out, line, (x, y), scale, (255, 255, 255), thickness)
        return out

    def _font(self, scene_hw: tuple[int, int]) -> tuple[float, int]:
        height, width = scene_hw
        scale = self.scale or max(0.4, max(height, width) / 1400)
        if self.scale is None:
            widest = max(self._line_width(line, 1.0, 2, text_size("Ag", 1.0, 2)[1]) + 20 for line in self.lines)
            scale = max(0.35, min(scale, self.max_share * width / widest))
        return scale, max(1, round(scale * 2))

    @staticmethod
    def _metrics(scale: float, thickness: int) -> tuple[int, int, int]:
        """(line height, padding, swatch size) in pixels."""
        text_h = text_size("Ag", scale, thickness)[1]
        return text_h + round(12 * scale), round(10 * scale), text_h

    @staticmethod
    def _line_width(line, scale: float, thickness: int, swatch: int) -> int:
        if isinstance(line, tuple):
            cells = len(line[1]) * (swatch + round(5 * scale)) + round(5 * scale)
            return text_size(line[0], scale, thickness)[0] + cells
        return text_size(line, scale, thickness)[0]


@dataclass
class FitnessAnnotator:
    """The fitness analysis of one frame (FitnessAnalyser's output) as text in the bottom-left
    slot: the exercise, then per person (with their "#ID" when there are several) the
    repetitions, the counted angle or why it is unknown, and what they are doing in words; a
    movement too shallow to count is said until the next one starts."""

    in_place: bool = False

    def lines(self, output: dict[str, Any]) -> list[str]:
        lines = [output["exercise"]["name"].upper()]
        people = output.get("people", {})
        for pid, person in people.items():
            who = f"#{pid}  " if len(people) > 1 else ""
            signal = person["signal_deg"]
            if signal is not None:
                angle = f"{signal:.0f}°  {person.get('phase', person['state'])}"
            else:
                reason = (person.get("signal_reason") or "not_visible").replace("_", " ")
                angle = f"angle unknown: {reason}"
            lines.append(f"{who}{plural(person['reps'], 'rep')}  {angle}")
            partial, last = person.get("last_partial"), person.get("last_rep")
            if partial is not None and person["state"] == "start" and (last is None or partial["end_s"] > last["end_s"]):
                lines.append(f"{who}not counted: too shallow ({partial['depth_deg']:.0f}°, "
                             f"needs {output['exercise']['turn_deg']:g}°)")
        return lines

    def panel(self, output: dict[str, Any]) -> TextPanel:
        return TextPanel(self.lines(output), corner="bottom-left", max_share=0.8, in_place=self.in_place)

    def annotate(self, scene: np.ndarray, output: dict[str, Any]) -> np.ndarray:
        return self.panel(output).annotate(scene)


def legend_lines(label_names: Sequence[str], palette: np.ndarray, visible: np.ndarray | None = None) -> list:
    """The legend's lines (TextPanel cells): a header naming the sides ("L", "R"), then per body
    region shown its left and right colours and its name ('upper arm'; the front colour where
    front and back differ); a region without sides (torso) shows its one colour in both."""
    regions: dict[str, dict[str, tuple[int, int, int]]] = {}
    for class_id, name in enumerate(label_names):
        if class_id == 0 or (visible is not None and not visible[class_id]):
            continue
        words = name.removesuffix("_front").removesuffix("_back").split("_")
        side = words[0] if words[0] in ("left", "right") else ""
        region = " ".join(words[1:] if side else words)
        regions.setdefault(region, {}).setdefault(side, tuple(int(c) for c in palette[class_id]))
    sided = any(side for sides in regions.values() for side in sides)
    lines: list = [("", ["L", "R"])] if sided else []
    for region, sides in regions.items():
        if not sided:
            lines.append((region, [sides[""]]))
        elif "" in sides:
            lines.append((region, [sides[""], sides[""]]))
        else:
            lines.append((region, [sides.get("left", ""), sides.get("right", "")]))
    return lines


LEGEND_MIN_CLASSES = 32  # beyond a few dozen classes (COCO panoptic's 133) colours alone cannot be told apart
LEGEND_MAX_PRESENT = 12  # a large label set's legend: its classes with the most pixels


def present_class_lines(parse: ParseResult, max_entries: int = LEGEND_MAX_PRESENT) -> list:
    """A large label set's legend lines (TextPanel cells): the classes present in the result, most
    pixels first (at most `max_entries`), each with its colour."""
    counts = np.bincount(parse.labels.ravel(), minlength=len(parse.label_names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if i and counts[i]][:max_entries]
    return [(parse.label_names[i], [tuple(int(c) for c in parse.palette[i])]) for i in present]


@dataclass
class ViewSettings:
    """What the overlay shows. The window changes these between frames; the next drawing reads
    them. show_stats: the speed readout is drawn into the image (and so into recordings; off by
    default: its figures are the machine's load, not the session's); stats_slot: its slot is kept
    free even when it is not drawn, for a readout a window paints over the image (in
    `readout_panel`'s box). show_legend: the colour legend (None: only for label sets too large to
    tell apart by colour). show_analysis: the analyses' text (repetitions) is drawn. mirror: drawn
    as in a mirror (a webcam facing the user), text staying readable."""

    opacity: float = 0.6
    visible_parts: np.ndarray | None = None  # bool per class id; None = all
    show_keypoints: bool = True
    show_stats: bool = False
    stats_slot: bool = False
    show_legend: bool | None = None  # None: only for label sets too large to read by colour alone
    show_analysis: bool = True
    mirror: bool = False


class FrameRenderer:
    """Draws a FrameResult as its `view` says: parts, keypoints, person labels (with several
    people or a selection), each analysis with its annotator, the part legend and the speed
    readout, each text in its slot. The frame is copied once and every annotator draws on that
    copy. Any thread may render a stored result again (the window redraws a paused frame this
    way)."""

    def __init__(self, view: ViewSettings | None = None) -> None:
        self.view = view or ViewSettings()
        self._analysis_annotators = {"fitness": FitnessAnnotator(in_place=True)}

    def render(self, result: FrameResult, view: ViewSettings | None = None) -> np.ndarray:
        """H x W x 3 uint8 RGB: a new array, `result.frame.image` untouched; drawn as `view`
        says (None: this renderer's view)."""
        view = view or self.view
        parse = result.parse
        scene = result.frame.image.copy()
        visible = view.visible_parts
        if visible is not None and len(visible) != len(parse.label_names):
            visible = None
        PartOverlay(opacity=view.opacity, visible=visible, in_place=True).annotate(scene, parse)
        if view.show_keypoints:
            KeypointAnnotator(in_place=True).annotate(scene, parse)
        if view.mirror:
            scene = np.ascontiguousarray(scene[:, ::-1])
            parse = replace(parse, people=[replace(p, mask=np.ascontiguousarray(p.mask[:, ::-1])) for p in parse.people])
        panels = self.panels(result, visible, scene.shape[:2], view)
        boxes = [box for panel in panels if (box := panel.box(scene.shape[:2])) is not None]
        if len(parse.people) > 1 or result.selected_people is not None:
            PersonLabelAnnotator(selected=result.selected_people, avoid=boxes, in_place=True).annotate(scene, parse)
        for panel in panels:
            panel.annotate(scene)
        return scene

    def panels(self, result: FrameResult, visible: np.ndarray | None, scene_hw: tuple[int, int],
               view: ViewSettings | None = None) -> list[TextPanel]:
        """The text slots: readout top left, analyses bottom left, legend top right (below the
        readout when both do not fit side by side)."""
        view = view or self.view
        panels = [self._analysis_annotators[name].panel(output) for name, output in result.analysis.items()
                  if view.show_analysis]
        readout = readout_panel(stats_lines(result)) if view.show_stats or view.stats_slot else None
        if readout is not None:
            panels.append(readout if view.show_stats else _Reserved(readout))
        parse = result.parse
        large = len(parse.label_names) > LEGEND_MIN_CLASSES
        if view.show_legend if view.show_legend is not None else large:
            lines = present_class_lines(parse) if large else legend_lines(parse.label_names, parse.palette, visible)
            legend = TextPanel(lines, corner="top-right", max_share=0.3)
            box, taken = legend.box(scene_hw), readout.box(scene_hw) if readout is not None else None
            if box is not None and taken is not None and _overlaps(box, taken):
                legend.below_y = taken[3]
            panels.append(legend)
        for panel in panels:
            panel.in_place = True
        return panels


@dataclass
class _Reserved:
    """A panel's slot kept free without drawing it."""

    panel: TextPanel
    in_place: bool = True

    def box(self, scene_hw: tuple[int, int]) -> Box | None:
        return self.panel.box(scene_hw)

    def annotate(self, scene: np.ndarray) -> np.ndarray:
        return scene


def readout_panel(lines: list[str], *, below_y: int = 0) -> TextPanel:
    """The speed readout's panel (top left): what the renderer draws with show_stats; with
    stats_slot, its box is where a window paints its own readout over the image."""
    return TextPanel(lines, max_share=0.45, below_y=below_y)


def stats_lines(result: FrameResult) -> list[str]:
    """The speed readout: FPS and latency for live sources; for files, where every frame waits
    its turn and latency means nothing, the frame's position instead; then the models."""
    if result.live:
        first = f"{result.fps:4.1f} FPS  {result.latency_ms:3.0f} ms"
    else:
        first = f"{result.fps:4.1f} FPS  frame {result.frame.index}  {result.frame.pts_s:.2f} s"
    return [first, models_text(result.model, result.pose_source)]


def models_text(model: str, pose_source: str) -> str:
    """The parser's name and, when a pose model gives the keypoints, that one's too:
    "bodypix  pose blazepose-torch" ("parser": the parser's own keypoints)."""
    return model if pose_source == "parser" else f"{model}  pose {pose_source}"


def _canvas(scene: np.ndarray, in_place: bool) -> np.ndarray:
    return scene if in_place else scene.copy()
