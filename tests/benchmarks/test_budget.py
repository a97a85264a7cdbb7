"""Budget verdicts flip exactly at the thresholds; one process and the fleet; capacity and the ship pick."""

from __future__ import annotations

import json
import math

import pytest

from tinykd.benchmarks.budget import judge, judge_results, ship
from tinykd.config import BudgetConfig

BUDGET = BudgetConfig(qps=100.0, p99_ms=20.0, batch=1, threads=2, device="cpu")


def row(qps=150.0, p99_ms=10.0, model="m", backend="torch-fp32", accuracy=0.9, **extra):
    return {"model": model, "backend": backend, "device": "cpu", "batch": 1, "threads": 2, "seq_len": 128,
            "accuracy": accuracy, "qps": qps, "p99_ms": p99_ms, "cores": 8, **extra}


@pytest.mark.parametrize("qps, meets", [(100.0, True), (math.nextafter(100.0, 0), False), (100.01, True), (99.99, False)])
def test_qps_threshold(qps, meets):
    """On one 2-core machine (budget.machines 1, 2 threads a process) the fleet is one process: it meets alone or not."""
    verdict = judge(row(qps=qps), BUDGET, machine_cores=2)
    assert verdict.qps_ok is meets and verdict.p99_ok and verdict.meets is meets and verdict.meets_alone is meets
    assert verdict.processes == (1 if meets else 2) and verdict.fleet_ok is meets
    # An 8-core machine holds 4 such processes: the fleet meets the target either way; alone it flips.
    bigger = judge(row(qps=qps), BUDGET, machine_cores=8)
    assert bigger.meets and bigger.meets_alone is meets


@pytest.mark.parametrize("p99, meets", [(20.0, True), (math.nextafter(20.0, 100), False), (19.99, True), (20.01, False)])
def test_p99_threshold(p99, meets):
    verdict = judge(row(p99_ms=p99), BUDGET, machine_cores=8)
    assert verdict.p99_ok is meets and verdict.qps_ok and verdict.meets is meets
    # More processes never lower one call's p99: a p99 miss misses at any fleet size.
    unlimited = judge(row(p99_ms=p99), BudgetConfig(**{**BUDGET.model_dump(), "machines": None}), machine_cores=8)
    assert unlimited.meets is meets


def test_the_fleet_is_judged_on_budget_machines_for_meets_and_misses_alike():
    two = BudgetConfig(**{**BUDGET.model_dump(), "machines": 2})  # 2 machines of 8 cores: 8 processes of 2 threads
    fits = judge(row(qps=13.0), two, machine_cores=8)  # ceil(100 / 13) = 8 processes
    assert (fits.processes, fits.cores, fits.machines, fits.meets, fits.meets_alone) == (8, 16, 2, True, False)
    over = judge(row(qps=12.0), two, machine_cores=8)  # 9 processes need a third machine
    assert (over.processes, over.machines, over.meets) == (9, 3, False)
    assert over.shortfall == pytest.approx(1 - 12.0 * 8 / 100)  # the allowed 8 processes serve 96 of 100 qps
    assert over.constraints() == pytest.approx([4.0, 10.0 - 20.0])
    assert over.fleet() == "9 process(es), 18 cores, 3 machine(s) of 2 allowed"
    slow_p99 = judge(row(qps=500.0, p99_ms=25.0), two, machine_cores=8)
    assert (slow_p99.processes, slow_p99.machines, slow_p99.meets) == (1, 1, False)  # the fleet is given for a miss too
    anywhere = judge(row(qps=1.0), BudgetConfig(**{**BUDGET.model_dump(), "machines": None}), machine_cores=8)
    assert anywhere.meets and anywhere.machines == 25
    assert anywhere.constraints()[0] == 0.0  # any fleet serves the QPS; finite, as Optuna's JSON storage needs
    json.dumps(anywhere.constraints(), allow_nan=False)


def test_margins_and_capacity():
    verdict = judge(row(qps=30.0, p99_ms=25.0), BUDGET, machine_cores=8)
    assert verdict.qps_margin_pct == pytest.approx(-70.0)
    assert verdict.p99_margin_ms == pytest.approx(-5.0)
    assert verdict.processes == 4  # ceil(100 / 30)
    assert verdict.cores == 8  # 4 processes x 2 threads
    assert verdict.machines == 1  # 8-core machines hold 4 two-thread processes
    assert judge(row(qps=10.0), BUDGET, machine_cores=8).machines == 3  # 10 processes, 4 per machine
    exact = judge(row(qps=50.0), BUDGET, machine_cores=8)
    assert (exact.processes, exact.cores) == (2, 4)  # exactly 2 processes, not 3
    assert verdict.shortfall == pytest.approx(0.25)  # the 4 processes the machine holds serve 120 qps; p99 +25 %
    assert judge(row(qps=30.0, p99_ms=25.0), BUDGET, machine_cores=2).shortfall == pytest.approx(0.7)  # one: -70 %



def test_gpu_capacity_counts_gpus_not_cores():
    """On cuda every serving process holds a GPU: a 16-core machine with 2 GPUs holds 2 processes, not 8."""
    gpu_budget = BudgetConfig(qps=1000.0, p99_ms=20.0, batch=8, threads=2, device="cuda")
    verdict = judge(row(qps=300.0, device="cuda"), gpu_budget, machine_cores=16, machine_gpus=2)
    assert (verdict.processes, verdict.gpus, verdict.cores, verdict.machines) == (4, 4, 8, 2)
    cpu = judge(row(qps=300.0), BudgetConfig(qps=1000.0, p99_ms=20.0, batch=8, threads=2), machine_cores=16)
    assert (cpu.gpus, cpu.machines) == (0, 1)  # 8 two-thread processes fit the 16 cores
    [from_row] = judge_results([row(qps=300.0, device="cuda", batch=8, gpus=1, cores=16)], gpu_budget, seq_len=128)
    assert from_row.machines == 4  # the bench row says its machine has one GPU

def test_only_the_budget_cell_is_judged():
    rows = [row(), row(batch=32), row(threads=1), row(device="cuda"), row(seq_len=64)]
    verdicts = judge_results(rows, BUDGET, seq_len=128)
    assert [(v.batch, v.threads, v.seq_len) for v in verdicts] == [(1, 2, 128)]


def test_ship_picks_the_most_accurate_model_that_meets_the_budget():
    verdicts = [judge(r, BUDGET, 8) for r in (
        row(model="teacher", accuracy=0.95, qps=20.0),  # most accurate, too slow: 5 processes, 4 fit the machine
        row(model="tiny", accuracy=0.93, qps=400.0),
        row(model="tiny-int8", accuracy=0.93, qps=900.0),  # same accuracy, faster
        row(model="bow", accuracy=0.88, qps=5000.0),
        row(model="unknown-accuracy", accuracy=math.nan, qps=9000.0),
    )]
    decision = ship(verdicts)
    assert decision.pick.model == "tiny-int8" and decision.closest_miss is None
    assert decision.line().startswith("ship tiny-int8/torch-fp32: accuracy 93.00%")


def test_without_a_meeting_model_ship_names_the_closest_miss():
    verdicts = [judge(r, BUDGET, 2) for r in (row(model="a", qps=50.0), row(model="b", qps=90.0),
                                              row(model="c", qps=500.0, p99_ms=40.0))]
    decision = ship(verdicts)
    assert decision.pick is None and decision.closest_miss.model == "b"
    assert "no model meets the budget; closest b/torch-fp32" in decision.line()
    assert ship([]).pick is None and ship([]).closest_miss is None
