"""Budget verdicts: does a model × backend serve `budget.qps` within `budget.p99_ms`, and which one to ship.

A verdict judges the bench cell that matches the budget (batch, threads, device): one serving process
of `threads` threads. It meets the budget when qps >= budget.qps and p99 <= budget.p99_ms (both
bounds inclusive). Capacity assumes throughput scales linearly with processes, which holds while
processes do not share cores: ceil(budget.qps / qps) processes, times `threads` cores. More processes
raise QPS but not the p99 of one call, so a p99 miss is a miss at any capacity. On `cuda` each process has a
GPU of its own: `gpus` counts them, and a machine holds as many processes as it has GPUs (not cores / threads).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from tinykd.config import BudgetConfig


@dataclass(frozen=True)
class Verdict:
    model: str
    backend: str
    device: str
    batch: int
    threads: int
    seq_len: int
    accuracy: float  # NaN when the compress stage recorded none
    qps: float
    p99_ms: float
    target_qps: float
    target_p99_ms: float
    qps_margin_pct: float  # (qps / target − 1) · 100: positive is headroom, negative the shortfall
    p99_margin_ms: float  # target − p99: positive is headroom
    processes: int  # serving processes of `threads` threads for the target QPS
    cores: int  # processes · threads (host threads on cuda)
    gpus: int  # cuda: one GPU per process; cpu: 0
    machines: int  # machines like this one (its cores, or its GPUs on cuda) holding those processes

    @property
    def qps_ok(self) -> bool:
        return self.qps >= self.target_qps

    @property
    def p99_ok(self) -> bool:
        return self.p99_ms <= self.target_p99_ms

    @property
    def meets(self) -> bool:
        return self.qps_ok and self.p99_ok

    @property
    def shortfall(self) -> float:
        """How far from the budget, as the worse relative miss (0 when it meets): ranks the closest miss."""
        return max(0.0, 1 - self.qps / self.target_qps, self.p99_ms / self.target_p99_ms - 1)

    def record(self) -> dict[str, Any]:
        return asdict(self) | {"meets": self.meets, "qps_ok": self.qps_ok, "p99_ok": self.p99_ok,
                               "shortfall": self.shortfall}


def judge(row: Mapping[str, Any], budget: BudgetConfig, machine_cores: int, machine_gpus: int = 0) -> Verdict:
    """The verdict of one result row (a bench cell's figures) against the budget."""
    qps, p99 = float(row["qps"]), float(row["p99_ms"])
    processes = math.ceil(budget.qps / qps)
    on_gpu = row["device"] == "cuda"
    per_machine = max(1, machine_gpus if on_gpu else machine_cores // budget.threads)
    return Verdict(
        model=row["model"], backend=row["backend"], device=row["device"], batch=int(row["batch"]),
        threads=int(row["threads"]), seq_len=int(row["seq_len"]), accuracy=float(row.get("accuracy", math.nan)),
        qps=qps, p99_ms=p99, target_qps=budget.qps, target_p99_ms=budget.p99_ms,
        qps_margin_pct=(qps / budget.qps - 1) * 100, p99_margin_ms=budget.p99_ms - p99,
        processes=processes, cores=processes * budget.threads, gpus=processes if on_gpu else 0,
        machines=math.ceil(processes / per_machine),
    )


def judge_results(rows: Iterable[Mapping[str, Any]], budget: BudgetConfig, seq_len: int) -> list[Verdict]:
    """Verdicts for the cells at the budget's batch, threads and device, measured at `seq_len`."""
    return [judge(row, budget, int(row["cores"]), int(row.get("gpus") or 0)) for row in rows
            if int(row["batch"]) == budget.batch and int(row["threads"]) == budget.threads
            and row["device"] == budget.device and int(row["seq_len"]) == seq_len]


@dataclass(frozen=True)
class ShipDecision:
    """The answer to 'which model do I ship': the most accurate that meets the budget, else the closest miss."""

    pick: Verdict | None
    closest_miss: Verdict | None

    def line(self) -> str:
        if self.pick is not None:
            v = self.pick
            return (f"ship {v.model}/{v.backend}: accuracy {v.accuracy:.2%}, {v.qps:.0f} qps "
                    f"({v.qps_margin_pct:+.0f}%), p99 {v.p99_ms:.1f} ms at batch {v.batch}, threads {v.threads}")
        if self.closest_miss is not None:
            v = self.closest_miss
            return (f"no model meets the budget; closest {v.model}/{v.backend}: {v.qps:.0f} qps "
                    f"({v.qps_margin_pct:+.0f}%), p99 {v.p99_ms:.1f} ms ({-v.p99_margin_ms:+.1f} ms)")
        return "no model was measured at the budget's batch, threads and device"


def ship(verdicts: Iterable[Verdict]) -> ShipDecision:
    """Most accurate meeting verdict (ties: faster; unknown accuracy ranks last); else the smallest shortfall."""
    verdicts = list(verdicts)
    meeting = [v for v in verdicts if v.meets]
    if meeting:
        accuracy = lambda v: -math.inf if math.isnan(v.accuracy) else v.accuracy  # noqa: E731
        return ShipDecision(max(meeting, key=lambda v: (accuracy(v), v.qps)), None)
    return ShipDecision(None, min(verdicts, key=lambda v: (v.shortfall, -v.qps), default=None))
