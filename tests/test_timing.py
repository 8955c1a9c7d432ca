"""The one timing loop (xlt_bench/measure/timing.py): per-call latencies and the sequence's wall time, by hand."""

from __future__ import annotations

import time

import pytest

from xlt_bench.measure.timing import time_calls


def test_cpu_latencies_and_wall_by_hand():
    synced = []

    def sleeper(seconds, value):
        def call():
            time.sleep(seconds)
            return value
        return call

    timed = time_calls([sleeper(0.02, "a"), sleeper(0.04, "b")], cuda_events=False,
                       synchronize=lambda: synced.append(True))
    assert timed.results == ["a", "b"] and synced == [True]        # one synchronisation, after the last call
    assert timed.latencies_s[0] == pytest.approx(0.02, abs=0.015)
    assert timed.latencies_s[1] == pytest.approx(0.04, abs=0.015)
    assert sum(timed.latencies_s) <= timed.wall_s < sum(timed.latencies_s) + 0.02


def test_empty_sequence():
    timed = time_calls([], cuda_events=False, synchronize=lambda: None)
    assert timed.results == [] and timed.latencies_s == [] and timed.wall_s >= 0


@pytest.mark.cuda
def test_cuda_events_time_queued_work():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    a = torch.randn(2048, 2048, device="cuda")
    timed = time_calls([lambda: a @ a] * 5, cuda_events=True, synchronize=torch.cuda.synchronize)
    assert len(timed.latencies_s) == 5 and all(s > 0 for s in timed.latencies_s)
    assert sum(timed.latencies_s) <= timed.wall_s * 1.05
