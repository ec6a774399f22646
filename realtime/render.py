"""Presentation: annotators (small drawing steps with their style set once, each
`annotate(scene, result) -> scene`) and the FrameRenderer that draws a FrameResult with them
as its ViewSettings say.

Scenes are H x W x 3 uint8 RGB arrays; annotators draw on a copy unless told `in_place`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class PersonLabelAnnotator:
    """Outlines each person's mask in their ID's colour and writes "#ID" above it. With a
    selection, the selected people get a thick outline and the others a thin one."""

    selected: frozenset[int] | None = None
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        base = max(2, round(max(scene.shape[:2]) / 500))
        scale = max(0.6, max(scene.shape[:2]) / 1200)
        for person in result.people:
            contours, _ = cv2.findContours(person.mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                continue
            left, top, width, _ = cv2.boundingRect(np.concatenate(contours))
            chosen = self.selected is not None and person.id in self.selected
            thickness = base * 2 if chosen else (base if self.selected is None else 1)
            color = person_color(person.id)
            cv2.drawContours(out, contours, -1, color, thickness)
            label = f"#{person.id}" + (" *" if chosen else "")
            (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, base)
            x = min(max(left + (width - text_w) // 2, 0), max(scene.shape[1] - text_w - 8, 0))
            y = max(top - 6, text_h + 8)
            cv2.rectangle(out, (x, y - text_h - 8), (x + text_w + 8, y + 4), (0, 0, 0), -1)
            cv2.putText(out, label, (x + 4, y - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, base, cv2.LINE_AA)
        return out


@dataclass
class TextPanel:
    """Lines of text on a translucent dark box in a corner ("top-left" or "bottom-left")."""

    lines: list[str] = field(default_factory=list)
    scale: float | None = None
    corner: str = "top-left"
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult | None = None) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        if not self.lines:
            return out
        scale = self.scale or max(0.5, max(scene.shape[:2]) / 1400)
        thickness = max(1, round(scale * 2))
        sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0] for line in self.lines]
        line_h = max(h for _, h in sizes) + round(12 * scale)
        pad = round(10 * scale)
        box_w = max(w for w, _ in sizes) + 2 * pad
        box_h = line_h * len(self.lines) + pad
        x1, box_h = min(box_w, scene.shape[1]), min(box_h, scene.shape[0])
        top = scene.shape[0] - box_h if self.corner == "bottom-left" else 0
        out[top:top + box_h, :x1] = (out[top:top + box_h, :x1] * 0.4).astype(np.uint8)
        for i, line in enumerate(self.lines):
            y = top + pad + line_h * (i + 1) - round(8 * scale)
            cv2.putText(out, line, (pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        return out


@dataclass
class LegendAnnotator:
    """The classes present in the result, largest area first (at most `max_entries`), each with
    its colour swatch, on a translucent dark box in the top-right corner."""

    max_entries: int = 12
    in_place: bool = False

    def annotate(self, scene: np.ndarray, result: ParseResult) -> np.ndarray:
        out = _canvas(scene, self.in_place)
        counts = np.bincount(result.labels.ravel(), minlength=len(result.label_names))
        present = [int(i) for i in np.argsort(-counts, kind="stable") if i and counts[i]][:self.max_entries]
        if not present:
            return out
        scale = max(0.45, max(scene.shape[:2]) / 1600)
        thickness = max(1, round(scale * 1.6))
        names = [result.label_names[i] for i in present]
        text_h = max(cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][1] for name in names)
        line_h, pad = text_h + round(10 * scale), round(8 * scale)
        box_w = min(max(cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for name in names)
                    + line_h + 3 * pad, scene.shape[1])
        box_h = min(line_h * len(present) + pad, scene.shape[0])
        left = scene.shape[1] - box_w
        out[:box_h, left:] = (out[:box_h, left:] * 0.4).astype(np.uint8)
        for row, (label, name) in enumerate(zip(present, names)):
            top = pad + row * line_h
            color = tuple(int(c) for c in result.palette[label])
            cv2.rectangle(out, (left + pad, top), (left + pad + text_h, top + text_h), color, -1)
            cv2.putText(out, name, (left + 2 * pad + text_h, top + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), thickness, cv2.LINE_AA)
        return out


@dataclass
class FitnessAnnotator:
    """The fitness analysis of one frame (FitnessAnalyser's output) as text in the bottom-left
    corner: the exercise, then per person their reps, the counted angle and the counter's state."""

    in_place: bool = False

    def annotate(self, scene: np.ndarray, output: dict[str, Any]) -> np.ndarray:
        lines = [output["exercise"]["name"].upper()]
        for pid, person in output.get("people", {}).items():
            signal = person["signal_deg"]
            angle = "--" if signal is None else f"{signal:.0f} deg"
            lines.append(f"#{pid}  {person['reps']} reps  {angle}  {person['state']}")
        return TextPanel(lines, corner="bottom-left", scale=max(0.7, max(scene.shape[:2]) / 900),
                         in_place=self.in_place).annotate(scene)


@dataclass
class ViewSettings:
    """What the overlay shows. The window changes these between frames; the next drawing reads
    them."""

    opacity: float = 0.6
    visible_parts: np.ndarray | None = None  # bool per class id; None = all
    show_keypoints: bool = True
    show_stats: bool = True
    show_legend: bool | None = None  # None: only for label sets too large to read by colour alone


LEGEND_MIN_CLASSES = 32  # beyond a few dozen classes (COCO panoptic's 133) colours alone cannot be told apart


class FrameRenderer:
    """Draws a FrameResult as its `view` says: parts, keypoints, person labels (with several
    people or a selection), the legend, each analysis with its annotator, and the speed readout. The frame is
    copied once and every annotator draws on that copy. Any thread may render a stored result
    again (the window redraws a paused frame this way)."""

    def __init__(self, view: ViewSettings | None = None) -> None:
        self.view = view or ViewSettings()
        self._analysis_annotators = {"fitness": FitnessAnnotator(in_place=True)}

    def render(self, result: FrameResult) -> np.ndarray:
        """H x W x 3 uint8 RGB: a new array, `result.frame.image` untouched."""
        view = self.view
        parse = result.parse
        scene = result.frame.image.copy()
        visible = view.visible_parts
        if visible is not None and len(visible) != len(parse.label_names):
            visible = None
        PartOverlay(opacity=view.opacity, visible=visible, in_place=True).annotate(scene, parse)
        if view.show_keypoints:
            KeypointAnnotator(in_place=True).annotate(scene, parse)
        if len(parse.people) > 1 or result.selected_people is not None:
            PersonLabelAnnotator(selected=result.selected_people, in_place=True).annotate(scene, parse)
        legend = view.show_legend if view.show_legend is not None else len(parse.label_names) > LEGEND_MIN_CLASSES
        if legend:
            LegendAnnotator(in_place=True).annotate(scene, parse)
        for name, output in result.analysis.items():
            self._analysis_annotators[name].annotate(scene, output)
        if view.show_stats:
            TextPanel(_stats_lines(result), in_place=True).annotate(scene)
        return scene


def _stats_lines(result: FrameResult) -> list[str]:
    """FPS and latency for live sources; for files, where every frame waits its turn and latency
    means nothing, the frame's position instead."""
    if result.live:
        first = f"{result.fps:4.1f} FPS  {result.latency_ms:3.0f} ms"
    else:
        first = f"{result.fps:4.1f} FPS  frame {result.frame.index}  {result.frame.pts_s:.2f} s"
    return [first, result.model]


def _canvas(scene: np.ndarray, in_place: bool) -> np.ndarray:
    return scene if in_place else scene.copy()
