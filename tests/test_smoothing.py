"""core.smoothing.OneEuroFilter at its edges: the first frame, time that does not move forward, speed-dependent lag."""
import numpy as np

from core.smoothing import OneEuroFilter


def test_the_first_frame_and_a_frame_not_later_than_the_last_pass_through_unsmoothed():
    f = OneEuroFilter(min_cutoff_hz=0.5, beta=0.0)
    assert np.array_equal(f(np.array([10.0, 20.0]), t=1.0), [10.0, 20.0])
    smoothed = f(np.array([30.0, 40.0]), t=1.1)
    assert 10 < smoothed[0] < 30  # smoothed towards the new value
    # a repeated or older timestamp (a restarted stream) restarts the filter at the new value
    assert np.array_equal(f(np.array([-5.0, 7.0]), t=1.1), [-5.0, 7.0])
    assert np.array_equal(f(np.array([3.0, 4.0]), t=0.2), [3.0, 4.0])
    assert 3 < f(np.array([13.0, 4.0]), t=0.3)[0] < 13  # and smooths again from there


def test_the_output_is_a_copy_the_caller_may_change():
    f = OneEuroFilter()
    f(np.zeros(2), 0.0)
    out = f(np.ones(2), 0.1)
    first = out.copy()
    out[:] = 1000
    nxt = f(np.ones(2), 0.2)
    assert (first < nxt).all() and (nxt < 1).all()  # still converging on 1 from its own state, from below


def test_beta_trades_smoothing_for_less_lag_on_a_moving_point():
    def lag_after_a_second(beta: float) -> float:
        f = OneEuroFilter(min_cutoff_hz=1.0, beta=beta)
        for frame in range(31):
            out = f(np.array([frame * 10.0]), frame / 30)  # 300 px/s
        return 300.0 - out[0]

    assert lag_after_a_second(0.0) > 30  # a plain low-pass filter trails a moving face
    assert lag_after_a_second(0.5) < lag_after_a_second(0.0) / 3
