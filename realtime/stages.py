"""The contracts between the pipeline's steps: source -> parser -> ResultStages -> Analysers ->
sinks. The pipeline knows steps only through these; `realtime.build` makes the concrete ones."""
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

    def close(self) -> None:
        """Release what the analyser holds; it is not called again."""
