import numpy as np
import pytest

from realtime.analysis.one_euro import OneEuroFilter


def test_noise_on_a_still_value_is_reduced():
    rng = np.random.default_rng(0)
    noisy = 90.0 + rng.normal(0, 3.0, 300)
    one_euro = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    out = np.array([one_euro(v, i / 30) for i, v in enumerate(noisy)]).ravel()
    assert np.std(out[30:]) < 0.4 * np.std(noisy[30:])
    assert abs(np.mean(out[30:]) - 90.0) < 1.0


def test_fast_motion_is_followed_with_less_lag_when_beta_is_high():
    times = np.arange(60) / 30
    ramp = 300.0 * times  # 300 units per second
    lags = {}
    for beta in (0.0, 0.5):
        one_euro = OneEuroFilter(min_cutoff_hz=1.0, beta=beta)
        out = np.array([one_euro(v, t) for v, t in zip(ramp, times)]).ravel()
        lags[beta] = ramp[-1] - out[-1]
    assert lags[0.5] < 0.3 * lags[0.0]


def test_missing_values_restart_the_element():
    one_euro = OneEuroFilter()
    one_euro(np.array([10.0, 20.0]), 0.0)
    gap = one_euro(np.array([np.nan, 21.0]), 1 / 30)
    assert np.isnan(gap[0]) and 20.0 < gap[1] < 21.0
    back = one_euro(np.array([50.0, 21.0]), 2 / 30)
    assert back[0] == 50.0


def test_reset_and_time_going_backwards_restart():
    one_euro = OneEuroFilter()
    one_euro(1.0, 0.0)
    assert one_euro(5.0, 0.0) == 5.0
    one_euro.reset()
    assert one_euro(7.0, 1.0) == 7.0
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff_hz=0)


def test_restart_drops_what_an_element_was_fed_before():
    """Elements restarted start afresh at their next value (as after a NaN): the readings before
    no longer pull them; the others are still smoothed."""
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    for i in range(10):
        f(np.array([30.0, 30.0]), i / 30)
    f.restart(np.array([True, False]))
    out = f(np.array([120.0, 120.0]), 10 / 30)
    assert out[0] == 120.0 and out[1] < 60
