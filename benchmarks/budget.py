"""Budget verdicts: does a model × backend serve `budget.qps` within `budget.p99_ms`, and which one to ship.

One rule, used by the bench stage, the report and the search objective (`judge`):
- a verdict judges the bench cell that matches the budget (batch, threads, device): one serving process of
  `threads` threads, its QPS and its p99 per call;
- the fleet: ceil(budget.qps / qps) such processes serve the target, on `processes · threads` cores, on
  machines like the bench machine (its cores / threads processes each; on `cuda` one process per GPU, so
  as many per machine as it has GPUs). Capacity assumes throughput scales linearly with processes, which
  holds while processes do not share cores. The fleet is given for meets and misses alike;
- it **meets** when the p99 holds (more processes raise QPS, never lower the p99 of one call, so a p99
  miss is a miss at any size) and the fleet fits on `budget.machines` machines (default 1: this machine;
  null: any number). `meets_alone` says whether one process does it by itself.
Both bounds are inclusive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
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
    qps: float  # one process
    p99_ms: float
    target_qps: float
    target_p99_ms: float
    qps_margin_pct: float  # (qps / target − 1) · 100 for one process: positive is headroom, negative the shortfall
    p99_margin_ms: float  # target − p99: positive is headroom
    processes: int  # serving processes of `threads` threads for the target QPS
    cores: int  # processes · threads (host threads on cuda)
    gpus: int  # cuda: one GPU per process; cpu: 0
    machines: int  # machines like this one (its cores, or its GPUs on cuda) holding those processes
    processes_per_machine: int
    allowed_machines: int | None  # budget.machines; None: any number

    @property
    def qps_ok(self) -> bool:
        """One process reaches the target QPS by itself."""
        return self.qps >= self.target_qps

    @property
    def p99_ok(self) -> bool:
        return self.p99_ms <= self.target_p99_ms

    @property
    def meets_alone(self) -> bool:
        return self.qps_ok and self.p99_ok

    @property
    def fleet_ok(self) -> bool:
        return self.allowed_machines is None or self.machines <= self.allowed_machines

    @property
    def meets(self) -> bool:
        return self.p99_ok and self.fleet_ok

    @property
    def allowed_qps(self) -> float:
        """What the allowed fleet serves: every allowed process at this process's QPS (inf with no machine limit)."""
        if self.allowed_machines is None:
            return math.inf
        return self.qps * self.allowed_machines * self.processes_per_machine

    @property
    def shortfall(self) -> float:
        """How far from the budget, as the worse relative miss (0 when it meets): ranks the closest miss."""
        return max(0.0, 1 - self.allowed_qps / self.target_qps, self.p99_ms / self.target_p99_ms - 1)

    def constraints(self) -> list[float]:
        """Optuna's convention (feasible when every value is <= 0): QPS the allowed fleet lacks, p99 ms over.
        With no machine limit any fleet serves the QPS: 0 (Optuna stores constraints as JSON, which has no inf)."""
        lacking = self.target_qps - self.allowed_qps if math.isfinite(self.allowed_qps) else 0.0
        return [lacking, self.p99_ms - self.target_p99_ms]

    def fleet(self) -> str:
        hardware = f"{self.gpus} GPUs" if self.device == "cuda" else f"{self.cores} cores"
        return (f"{self.processes} process(es), {hardware}, {self.machines} machine(s)"
                + ("" if self.allowed_machines is None else f" of {self.allowed_machines} allowed"))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Verdict:
        """A verdict back from its `record()` as bench/results.json keeps it (unknown accuracy written as null)."""
        values = {f.name: record[f.name] for f in fields(cls)}
        return cls(**values | {"accuracy": math.nan if values["accuracy"] is None else float(values["accuracy"])})

    def record(self) -> dict[str, Any]:
        return asdict(self) | {"meets": self.meets, "meets_alone": self.meets_alone, "qps_ok": self.qps_ok,
                               "p99_ok": self.p99_ok, "fleet_ok": self.fleet_ok, "shortfall": self.shortfall}


def judge(row: Mapping[str, Any], budget: BudgetConfig, machine_cores: int, machine_gpus: int = 0) -> Verdict:
    """The verdict of one result row (a bench cell's figures: model, backend, device, batch, threads, seq_len,
    qps, p99_ms, accuracy) against the budget, on machines of `machine_cores` cores / `machine_gpus` GPUs."""
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
        machines=math.ceil(processes / per_machine), processes_per_machine=per_machine,
        allowed_machines=budget.machines,
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
            return (f"ship {v.model}/{v.backend}: accuracy {v.accuracy:.2%}, {v.qps:.0f} qps per process "
                    f"({v.qps_margin_pct:+.0f}%), p99 {v.p99_ms:.1f} ms at batch {v.batch}, threads {v.threads}; "
                    f"fleet {v.fleet()}")
        if self.closest_miss is not None:
            v = self.closest_miss
            return (f"no model meets the budget; closest {v.model}/{v.backend}: {v.qps:.0f} qps per process "
                    f"({v.qps_margin_pct:+.0f}%), p99 {v.p99_ms:.1f} ms ({-v.p99_margin_ms:+.1f} ms); "
                    f"fleet {v.fleet()}")
        return "no model was measured at the budget's batch, threads and device"


def ship(verdicts: Iterable[Verdict]) -> ShipDecision:
    """Most accurate meeting verdict (ties: faster; unknown accuracy ranks last); else the smallest shortfall."""
    verdicts = list(verdicts)
    meeting = [v for v in verdicts if v.meets]
    if meeting:
        accuracy = lambda v: -math.inf if math.isnan(v.accuracy) else v.accuracy  # noqa: E731
        return ShipDecision(max(meeting, key=lambda v: (accuracy(v), v.qps)), None)
    return ShipDecision(None, min(verdicts, key=lambda v: (v.shortfall, -v.qps), default=None))
