"""The contracts between the pipeline's steps: source -> parser -> ResultStages -> Analysers ->
sinks. The pipeline knows steps only through these; `realtime.build` makes the concrete ones,
which subclass them to inherit the default `seek` and `merge_people`."""
from __future__ import annotations

from typing import Any, Protocol

from realtime.types import Frame, ParseResult


class ResultStage(Protocol):
    """A step between the parser and the analysers that refines a ParseResult (a second pose or
    person-mask model, person tracking, temporal smoothing). Stages run in order on the
    inference thread; the pipeline that runs them calls `close()` when it stops or drops them."""

    name: str

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult: ...

    def reset(self) -> None:
        """Forget the past (a new source or model starts)."""

    def warm_up(self, frame: Frame, parse: ParseResult) -> ParseResult:
        """Runs on `frame` as a call does, building what the stage builds on its first frames (its
        networks' graphs for the frame's size) even where the frame shows no one (a blank frame);
        the pipeline resets the stage after (Pipeline.warm_up). By default: a call."""
        return self(frame, parse)

    def seek(self, position_s: float) -> None:
        """Playback jumped to `position_s` seconds (a seek or a loop): forget the motion seen so
        far. By default everything is forgotten; a stage that keeps who is who overrides it."""
        self.reset()

    def merge_people(self, new_id: int, into_id: int) -> None:
        """Person `new_id` is the same person as the earlier `into_id`: from now on they are one
        (the user said so). Stages that keep nothing per person ignore it."""

    def close(self) -> None:
        """Release what the stage holds (threads, graphs); it is not called again."""


class Analyser(Protocol):
    """Derives numbers from a parsed frame (joint angles, repetitions). `update` returns a
    JSON-serialisable dict, stored under `name` in FrameResult.analysis and the JSONL line.
    Analysers return data only: drawing it is an annotator's job (realtime.render)."""

    name: str

    def update(self, frame: Frame, parse: ParseResult) -> dict[str, Any]: ...

    def reset(self) -> None:
        """Forget the past (a new source or model starts)."""

    def seek(self, position_s: float) -> None:
        """Playback jumped to `position_s` seconds: forget what was in progress (by default
        everything); results completed before that point may be kept."""
        self.reset()

    def merge_people(self, new_id: int, into_id: int) -> None:
        """Person `new_id` is the same person as the earlier `into_id`: combine what is known
        of them under `into_id` (by default nothing is kept per person)."""

    def close(self) -> None:
        """Release what the analyser holds; it is not called again."""
