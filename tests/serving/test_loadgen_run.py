"""LoadGen's Server scenario against the in-process system (a real tiny model behind the batch policy): its log is
parsed into an outcome, a run flips from VALID to INVALID when the p99 bound is tightened below what was measured,
and the search finds the highest VALID load between a VALID and an INVALID one."""

from __future__ import annotations

import math

import pytest

from tests.serving.tiny_run import served_run
from tinykd.serving import load_stage
from tinykd.serving.load_systems import InProcessSystem
from tinykd.serving.loadgen_run import LoadOutcome, LoadPoint, run_point
from tinykd.serving.predictor import Predictor, ServedModel

pytest.importorskip("mlperf_loadgen", reason="the serve extra is not installed (make serve-env)")


def _outcome(qps: float, valid: bool) -> LoadOutcome:
    return LoadOutcome(qps, 20.0, valid, valid, qps, qps, 1.0, 2.0, 3.0, 4.0, 100, 0, 1.0, True, True, "")


def test_search_doubles_to_the_first_invalid_load_then_bisects():
    capacity, offered = 300.0, []

    def run(qps):
        offered.append(qps)
        return _outcome(qps, qps <= capacity)

    outcomes = load_stage.search(run, start=50, steps=3)
    assert offered == [50, 100, 200, 400, 300, 350, 325]
    assert load_stage.highest_valid(outcomes) == 300


def test_search_halves_when_the_first_load_is_invalid_but_not_below_the_lowest_load():
    offered = []
    outcomes = load_stage.search(lambda qps: offered.append(qps) or _outcome(qps, qps <= 20), start=100, steps=1)
    assert offered == [100, 50, 25, 12.5, 18.75]
    assert load_stage.highest_valid(outcomes) == 18.75
    offered.clear()  # nothing is VALID: halving stops at the lowest load that can send its queries in time
    outcomes = load_stage.search(lambda qps: offered.append(qps) or _outcome(qps, False), start=100, steps=1, lowest=10)
    assert offered == [100, 50, 25, 12.5] and math.isnan(load_stage.highest_valid(outcomes))


def test_a_run_is_valid_at_a_loose_bound_and_invalid_below_its_own_p99(tmp_path, tiny_teacher, sentiment_files):
    config, paths = served_run(tmp_path, tiny_teacher, sentiment_files)
    predictor = Predictor(ServedModel(paths.root, "teacher", "torch-fp32", pair=False, seq_len=32), threads=1)
    items = load_stage.query_items(config.model_copy(update={"load": load_stage.LoadConfig()}), paths)
    system = InProcessSystem(predictor, max_batch_size=8, wait_s=0.002)
    try:
        # 600 queries: LoadGen's early-stopping estimate needs ~470 queries, none over the bound, to call a p99 met
        loose = run_point(system, items, LoadPoint(300, 1000.0, 1.0, 600, 20.0, seed=0), log_dir=tmp_path / "log")
        assert loose.valid and loose.loadgen_valid and loose.failed == 0
        assert loose.queries >= 600 and loose.min_duration_met and loose.min_queries_met
        assert 0 < loose.p50_ms <= loose.p90_ms <= loose.p99_ms <= loose.max_ms
        assert loose.scheduled_qps == pytest.approx(300, rel=0.5)  # Poisson arrivals around the offered rate
        assert (tmp_path / "log" / "mlperf_log_detail.txt").is_file()
        # The same load with a bound under the p99 just measured: LoadGen calls it INVALID.
        tight = run_point(system, items, LoadPoint(300, loose.p99_ms / 100, 1.0, 600, 20.0, seed=0))
        assert not tight.valid and not tight.loadgen_valid
    finally:
        system.close()
    assert sum(size * n for size, n in system.batch_sizes().items()) == loose.queries + tight.queries
