"""Playback of a file source: play and pause, speed, pacing, loop, seeks and frame steps.

One Playback is shared by the two threads it steers: the capture thread (realtime.sources.Source)
asks it where to reposition the file and, in real time, when each decoded frame is due; the
inference worker (the pipeline's first step thread, realtime.pipeline.Pipeline) asks it whether it
may take a frame and, playing every frame, when that frame is due. Pausing therefore stops the
whole chain once the frames already taken are delivered, parsing, analysis and recording alike,
and a seek or a step while paused lets exactly one frame through, so the view shows where
playback stands. Callers (the CLI, the window) change it through these methods from any thread;
live sources ignore it except for the pause, which only stops the worker (the camera keeps its
newest frame).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

MIN_SPEED = 0.25
MAX_SPEED = 2.0
CAPTURE, WORKER = "capture", "worker"  # the two threads a Playback steers


@dataclass(frozen=True)
class SeekRequest:
    """Where the capture thread is to continue: `generation` counts seeks (0 = none yet),
    `position_s` is the target in seconds from the first frame (None: from where it stands) and
    `loop_offset` the pass of a looped file it continues in (Frame.loop_offset: the pass of the
    frame shown; None: the pass being read)."""

    generation: int
    position_s: float | None
    loop_offset: tuple[int, float] | None = None


class Playback:
    """speed: None plays frames as fast as they are taken (batch processing); a number paces
    frames at that multiple of their own rate (MIN_SPEED..MAX_SPEED). drop_late: frames the
    worker is too slow for are dropped to keep up with the clock ("real time"), instead of
    playing every frame later than the clock ("every frame"). loop: a file starts again at its
    end, as a seek to 0 would but with its frame indices and times running on (realtime.sources.
    Source). ValueError for a speed out of range."""

    def __init__(self, *, speed: float | None = None, drop_late: bool = False, loop: bool = False) -> None:
        self._condition = threading.Condition()
        self._paused = False
        self._speed = _checked(speed)
        self._drop_late = drop_late
        self._loop = loop
        self._seek = SeekRequest(0, None)
        self._claimed = 0  # the generation the capture thread repositioned to
        self._steps = {CAPTURE: 0, WORKER: 0}  # frames the paused capture thread / worker may still pass on
        self._anchor: tuple[float, float] | None = None  # (monotonic s, frame s) of the pacing clock
        self._held = False  # the pacing clock waits for the chain to warm up (hold_clock)

    # --- state ---------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float | None:
        return self._speed

    @property
    def drop_late(self) -> bool:
        return self._drop_late

    @property
    def loop(self) -> bool:
        return self._loop

    @property
    def generation(self) -> int:
        """How many seeks were asked for; frames decoded before the latest one are stale."""
        return self._seek.generation

    # --- intent --------------------------------------------------------------------
    def pause(self) -> None:
        with self._condition:
            self._paused = True
            self._condition.notify_all()

    def resume(self) -> None:
        """Plays on from the frame shown; the pacing clock starts again from the next frame."""
        with self._condition:
            self._paused = False
            self._steps = {CAPTURE: 0, WORKER: 0}
            self._anchor = None
            self._condition.notify_all()

    def hold_clock(self) -> None:
        """The steps after decoding are cold (a start, a new source, model or stages: they build
        their graphs on their first frame): the thread that paces passes the next frame on and holds
        the one after it until `start_clock`, so no frame comes due while the chain warms up."""
        with self._condition:
            self._held = True
            self._anchor = None
            self._condition.notify_all()

    def start_clock(self, frame_s: float) -> None:
        """The chain is warm (after `hold_clock`): the pacing clock runs from now, when the frame at
        `frame_s` (seconds) went through it (delivered, or failed in a step), so the next comes due
        one frame interval later."""
        with self._condition:
            if self._held:
                self._held = False
                self._anchor = (time.monotonic(), frame_s)
                self._condition.notify_all()

    def set_speed(self, speed: float | None) -> None:
        with self._condition:
            self._speed = _checked(speed)
            self._anchor = None
            self._condition.notify_all()

    def set_drop_late(self, drop_late: bool) -> None:
        with self._condition:
            self._drop_late = drop_late
            self._anchor = None
            self._condition.notify_all()

    def set_loop(self, loop: bool) -> None:
        with self._condition:
            self._loop = loop
            self._condition.notify_all()

    def seek(self, position_s: float, loop_offset: tuple[int, float] | None = None) -> None:
        """Continues from the frame at `position_s` (seconds from the first frame; clamped at 0)
        in the pass of a looped file that `loop_offset` (Frame.loop_offset) numbers (None: the pass
        being read). While paused exactly that frame is shown."""
        with self._condition:
            self._seek = SeekRequest(self._seek.generation + 1, max(0.0, float(position_s)), loop_offset)
            self._anchor = None
            if self._paused:
                self._steps = {CAPTURE: 1, WORKER: 1}
            self._condition.notify_all()

    def step(self) -> None:
        """Pauses (if playing) and lets the next frame through."""
        with self._condition:
            self._paused = True
            for thread in self._steps:
                self._steps[thread] += 1
            self._condition.notify_all()

    # --- the capture thread ----------------------------------------------------------
    @property
    def paced_at_capture(self) -> bool:
        """Real time: the capture thread paces frames and the worker sees only the newest one.
        Otherwise the worker paces the frames it takes, and none is dropped."""
        return self._drop_late and self._speed is not None

    def claim_seek(self) -> SeekRequest | None:
        """The seek the capture thread has not repositioned for yet, if any (it claims it)."""
        with self._condition:
            if self._seek.generation == self._claimed:
                return None
            self._claimed = self._seek.generation
            return self._seek

    def capture_due(self, frame_s: float, generation: int, stop: threading.Event) -> bool:
        """Blocks the capture thread until the frame at `frame_s` (seconds) is due, in real time
        only: while paused (unless a step or seek lets it through), while the clock is held
        (hold_clock) and until the clock reaches it (late frames are then dropped by the buffer,
        the clock stays). False when a seek or
        `stop` came first: the frame is stale."""
        return self._due(CAPTURE, frame_s, generation, stop)

    def wait_for_seek(self, generation: int, stop: threading.Event) -> None:
        """Blocks the capture thread at the end of a file until a seek or `stop`."""
        with self._condition:
            while not stop.is_set() and self._seek.generation == generation:
                self._condition.wait(0.1)

    # --- the inference worker --------------------------------------------------------
    def may_take(self) -> bool:
        """Whether the worker may take a frame now: playing, or a step or seek is pending."""
        with self._condition:
            return not self._paused or self._steps[WORKER] > 0

    def worker_due(self, frame_s: float, generation: int, stop: threading.Event) -> bool:
        """Blocks the worker with the frame it took until it is due: a pause that came
        meanwhile holds it, a step lets it through, and frames not paced by the capture wait
        for the clock (a late one restarts the clock from itself: every frame plays, later).
        False when a seek or `stop` came first: the frame is stale."""
        return self._due(WORKER, frame_s, generation, stop)

    def _due(self, thread: str, frame_s: float, generation: int, stop: threading.Event) -> bool:
        """capture_due / worker_due: `thread` paces the frames in real time (CAPTURE) or playing
        every frame (WORKER), and each holds its frame while paused."""
        capture = thread == CAPTURE
        with self._condition:
            while True:
                if stop.is_set() or self._seek.generation != generation:
                    return False
                if capture and not self.paced_at_capture:
                    return True  # the worker holds and paces
                if self._paused:
                    if self._steps[thread]:
                        self._steps[thread] -= 1
                        self._anchor = None
                        return True
                    self._condition.wait(0.1)
                    continue
                if self._speed is None or self.paced_at_capture != capture:
                    return True
                if self._held and self._anchor is not None:  # one frame passed: the rest wait for start_clock
                    self._condition.wait(0.1)
                    continue
                delay = self._delay(frame_s, drop_late=capture)
                if delay <= 0:
                    return True
                self._condition.wait(min(delay, 0.1))

    def idle(self, timeout_s: float) -> None:
        """Waits up to `timeout_s` for a change (the worker while paused)."""
        with self._condition:
            self._condition.wait(timeout_s)

    def _delay(self, frame_s: float, *, drop_late: bool) -> float:
        """Seconds until the frame at `frame_s` is due on the pacing clock (the first frame after
        a start, resume or seek is due at once); a late frame restarts the clock from itself
        unless late frames are dropped."""
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, frame_s)
            return 0.0
        delay = self._anchor[0] + (frame_s - self._anchor[1]) / self._speed - now
        if delay < 0 and not drop_late:
            self._anchor = (now, frame_s)
        return delay


def _checked(speed: float | None) -> float | None:
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be from {MIN_SPEED:g}x to {MAX_SPEED:g}x, not {speed:g}x")
    return None if speed is None else float(speed)
