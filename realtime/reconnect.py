"""Exponential backoff between reconnection attempts of a live source."""
from __future__ import annotations


class Backoff:
    """Delays of first_s, 2 x first_s, ... capped at max_s; `reset` after a success."""

    def __init__(self, *, first_s: float = 0.5, max_s: float = 3.0) -> None:
        if first_s <= 0 or max_s < first_s:
            raise ValueError("backoff needs 0 < first_s <= max_s")
        self.first_s = first_s
        self.max_s = max_s
        self.attempts = 0

    def next_delay_s(self) -> float:
        delay = min(self.first_s * 2 ** self.attempts, self.max_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
