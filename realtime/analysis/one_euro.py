"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose cutoff rises
with speed, so slow jitter is smoothed away while fast motion is followed with little lag."""
from __future__ import annotations

import math

import numpy as np


def _smoothing_factor(cutoff_hz: float | np.ndarray, dt_s: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """Filters an array of values (any shape, filtered element-wise) sampled at known times.

    min_cutoff_hz: cutoff at rest (lower = smoother, more lag when starting to move).
    beta: how fast the cutoff rises with speed (higher = less lag on fast motion).
    d_cutoff_hz: cutoff of the speed estimate itself.
    NaN in the input means "no measurement": the output is NaN there and that element starts
    afresh at its next measurement.
    """

    def __init__(self, *, min_cutoff_hz: float = 1.0, beta: float = 0.05, d_cutoff_hz: float = 1.0) -> None:
        if min_cutoff_hz <= 0 or d_cutoff_hz <= 0 or beta < 0:
            raise ValueError("One Euro cutoffs must be > 0 and beta >= 0")
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time_s: float | None = None

    def reset(self) -> None:
        self._value = self._speed = self._time_s = None

    def restart(self, where: np.ndarray) -> None:
        """The elements where `where` (bool, the values' shape) is True start afresh at their next
        measurement, as after a NaN: what they were fed before no longer pulls them."""
        if self._value is not None and self._value.shape == where.shape:
            self._value = np.where(where, np.nan, self._value)

    def __call__(self, value: np.ndarray | float, time_s: float) -> np.ndarray:
        x = np.asarray(value, dtype=np.float64)
        if self._value is None or self._value.shape != x.shape or self._time_s is None or time_s <= self._time_s:
            self._value, self._speed, self._time_s = x.copy(), np.zeros_like(x), time_s
            return x.copy()
        dt_s = time_s - self._time_s
        self._time_s = time_s
        fresh = np.isnan(self._value) & ~np.isnan(x)
        speed = np.where(fresh, 0.0, (x - self._value) / dt_s)
        self._speed = np.where(fresh, 0.0, self._speed + _smoothing_factor(self.d_cutoff_hz, dt_s) * (speed - self._speed))
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._speed)
        alpha = _smoothing_factor(cutoff, dt_s)
        smoothed = np.where(fresh, x, self._value + alpha * (x - self._value))
        self._value = smoothed
        return smoothed.copy()
