"""The simulator's policies: an enum-keyed table of how each one orders, takes turns and uses lanes.

Each row mirrors the configuration Salus evaluated its policies in (papers.md §1.2) plus seed 000's
two: FIFO, SRTF and FAIR run one iteration at a time per GPU (a single lane); PACK runs Salus lanes
concurrently. WEIGHT and GA follow seed 000: one GPU's jobs take turns in *rounds* (each live job
one iteration per round, in the round's order), which is where the order decides how much transfer
hides under compute. WEIGHT recomputes its order every round from a sliding window; GA uses one
static order found offline by :mod:`gpulane_core.ga` with the simulator as fitness.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gpulane_core.ordering import OrderingPolicy
from gpulane_core.turns import Discipline


class SimPolicy(enum.Enum):
    FIFO = "fifo"
    SRTF = "srtf"
    SJF = "sjf"
    PACK = "pack"
    FAIR = "fair"
    WEIGHT = "weight"
    GA = "ga"
    GPULANE = "gpulane"


class LaneMode(enum.Enum):
    SINGLE = "single"  # one iteration at a time per GPU, whatever the lanes
    CONCURRENT = "concurrent"  # Salus lanes run side by side


@dataclass(frozen=True, slots=True)
class PolicySpec:
    ordering: OrderingPolicy | None  # None: a static order given by the caller (GA)
    discipline: Discipline
    lanes: LaneMode
    placement: str = "auto"  # the placement profile under ``SimConfig.placement == "auto"``


POLICIES: Mapping[SimPolicy, PolicySpec] = MappingProxyType(
    {
        SimPolicy.FIFO: PolicySpec(OrderingPolicy.FIFO, Discipline.STRICT, LaneMode.SINGLE),
        SimPolicy.SRTF: PolicySpec(OrderingPolicy.SRTF, Discipline.STRICT, LaneMode.SINGLE),
        SimPolicy.SJF: PolicySpec(OrderingPolicy.SRTF, Discipline.RUN_TO_COMPLETION, LaneMode.SINGLE),
        SimPolicy.PACK: PolicySpec(OrderingPolicy.PACK, Discipline.STRICT, LaneMode.CONCURRENT),
        SimPolicy.FAIR: PolicySpec(OrderingPolicy.FAIR, Discipline.STRICT, LaneMode.SINGLE),
        SimPolicy.WEIGHT: PolicySpec(OrderingPolicy.WEIGHT, Discipline.ROUNDS, LaneMode.SINGLE),
        SimPolicy.GA: PolicySpec(None, Discipline.ROUNDS, LaneMode.SINGLE),
        # Lanes run concurrently and pack (gpulane placement); the queue and every lane go by srtf,
        # preempting at iteration boundaries, with seed 000's weight among equally long jobs. A job
        # joins a busy lane only when it would run first there, else waits unbound (gpulane-late).
        SimPolicy.GPULANE: PolicySpec(
            OrderingPolicy.GPULANE, Discipline.STRICT, LaneMode.CONCURRENT, placement="gpulane-late"
        ),
    }
)


def parse_policies(text: str) -> list[SimPolicy]:
    """'fifo,srtf' to policies; ValueError naming the unknown one and the known ones."""
    out: list[SimPolicy] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        try:
            policy = SimPolicy(name)
        except ValueError:
            known = ", ".join(p.value for p in SimPolicy)
            raise ValueError(f"--policy: unknown policy {name!r} (known: {known})") from None
        if policy not in out:
            out.append(policy)
    if not out:
        raise ValueError("--policy: name at least one policy")
    return out
