"""Ordering policies: who goes first, in the pending queue and inside a lane.

One table serves both uses. The operator orders its pending jobs before a scheduling cycle; the
simulator (and the node coordinator) orders the jobs of one lane before each turn. A policy sees only
:class:`TurnStats`, so the same code runs on live counters and on simulated ones.

Policies (Salus `executionengine.cpp` names, plus seed 000's weight heuristic):

* ``fifo``: arrival order.
* ``srtf``: least remaining time (estimate minus time used) first.
* ``pack``: arrival order; the packing itself comes from running many lanes.
* ``fair``: least attained GPU time first.
* ``weight``: reward = compute / (compute + idle) in the window, penalty = time to bring the working
  set back, weight = reward / penalty; sort by weight (ties: smaller penalty first), then emit the
  highest, the lowest, the next-highest, the next-lowest, ... so a long compute hides a long transfer.
* ``gpulane``: ``srtf`` where remaining times differ; jobs with equal remaining time (in particular
  when nobody gave an estimate, all 0) are ordered by ``weight`` among themselves.

Every policy first groups by ``priority`` (higher first); with the default priority 0 this is a no-op.
All ties end on the job name, so an order is a pure function of its input.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from types import MappingProxyType

from gpulane_core.model import JobId


class OrderingPolicy(enum.Enum):
    FIFO = "fifo"
    SRTF = "srtf"
    PACK = "pack"
    FAIR = "fair"
    WEIGHT = "weight"
    GPULANE = "gpulane"


@dataclass(frozen=True, slots=True)
class TurnStats:
    """What a policy may know about one job."""

    job: JobId
    arrival_s: float
    priority: int = 0
    attained_s: float = 0.0  # GPU time used so far (FAIR)
    remaining_s: float = 0.0  # estimate minus used (SRTF)
    compute_s: float = 0.0  # compute time inside the sliding window (weight's reward)
    idle_s: float = 0.0  # idle or waiting time inside the window
    penalty_s: float = 0.0  # time to bring the working set back (weight's penalty)
    iterations_done: int = 0


OrderFn = Callable[[Sequence[TurnStats]], list[JobId]]

# A running turn always uses some GPU time; a prediction projects at least this much when nothing
# better is known, so ties with jobs that have not run resolve as they will once the turn ends.
MIN_TURN_S = 1e-6


def after_turn(stats: TurnStats, compute_s: float) -> TurnStats:
    """``stats`` as they will read once a turn computing ``compute_s`` more seconds has ended."""
    used = max(MIN_TURN_S, compute_s)
    return replace(
        stats,
        attained_s=stats.attained_s + used,
        remaining_s=max(0.0, stats.remaining_s - used),
        compute_s=stats.compute_s + used,
        iterations_done=stats.iterations_done + 1,
    )


def parse_policy(policy: str | OrderingPolicy) -> OrderingPolicy:
    """The policy named ``policy``; ValueError naming the unknown name and the known ones."""
    if isinstance(policy, OrderingPolicy):
        return policy
    try:
        return OrderingPolicy(policy.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in OrderingPolicy)
        raise ValueError(f"ordering policy: unknown policy {policy!r} (known: {known})") from None


def order(policy: str | OrderingPolicy, stats: Sequence[TurnStats]) -> list[JobId]:
    """Job ids in the order ``policy`` gives them turns (or queue positions)."""
    chosen = parse_policy(policy)
    names = [s.job for s in stats]
    if len(set(names)) != len(names):
        raise ValueError("stats: a job appears more than once")
    if len(names) < 2:
        return names  # every policy orders one job as itself (a lane of one asks at every turn)
    fn = ORDERINGS[chosen]
    result: list[JobId] = []
    # Priority classes first (higher first); the policy orders inside a class.
    by_priority = sorted(stats, key=lambda s: -s.priority)
    for _, group in groupby(by_priority, key=lambda s: s.priority):
        result.extend(fn(list(group)))
    return result


def _reward(stats: TurnStats) -> float:
    """compute / (compute + idle) in the window; 0 when the window saw neither."""
    busy = stats.compute_s + stats.idle_s
    return stats.compute_s / busy if busy > 0 else 0.0


def weight_of(stats: TurnStats) -> float:
    """Seed 000's weight: reward / penalty, +inf when there is nothing to bring back."""
    if stats.penalty_s <= 0:
        return math.inf
    return _reward(stats) / stats.penalty_s


def weight_ranking(stats: Iterable[TurnStats]) -> list[TurnStats]:
    """Highest weight first; ties go to the smaller penalty, then the higher reward, then the name."""

    def key(s: TurnStats) -> tuple[float, float, float, str]:
        return (-weight_of(s), s.penalty_s, -_reward(s), s.job)

    return sorted(stats, key=key)


def interleave(ranked: Sequence[JobId]) -> list[JobId]:
    """Highest, lowest, next-highest, next-lowest, ... (D > C > A > B gives D, B, C, A)."""
    out: list[JobId] = []
    lo, hi = 0, len(ranked) - 1
    take_high = True
    while lo <= hi:
        if take_high:
            out.append(ranked[lo])
            lo += 1
        else:
            out.append(ranked[hi])
            hi -= 1
        take_high = not take_high
    return out


def _by_arrival(stats: Sequence[TurnStats]) -> list[JobId]:
    return [s.job for s in sorted(stats, key=lambda s: (s.arrival_s, s.job))]


def _srtf(stats: Sequence[TurnStats]) -> list[JobId]:
    return [s.job for s in sorted(stats, key=lambda s: (s.remaining_s, s.arrival_s, s.job))]


def _fair(stats: Sequence[TurnStats]) -> list[JobId]:
    return [s.job for s in sorted(stats, key=lambda s: (s.attained_s, s.arrival_s, s.job))]


def _weight(stats: Sequence[TurnStats]) -> list[JobId]:
    return interleave([s.job for s in weight_ranking(stats)])


def _gpulane(stats: Sequence[TurnStats]) -> list[JobId]:
    ranked = sorted(stats, key=lambda s: s.remaining_s)
    out: list[JobId] = []
    for _, tied in groupby(ranked, key=lambda s: s.remaining_s):
        group = list(tied)
        out.extend(_weight(group) if len(group) > 1 else [group[0].job])
    return out


# Read-only: the set of policies is closed; a new one is a new enum member and a new row.
ORDERINGS: Mapping[OrderingPolicy, OrderFn] = MappingProxyType(
    {
        OrderingPolicy.FIFO: _by_arrival,
        OrderingPolicy.SRTF: _srtf,
        OrderingPolicy.PACK: _by_arrival,
        OrderingPolicy.FAIR: _fair,
        OrderingPolicy.WEIGHT: _weight,
        OrderingPolicy.GPULANE: _gpulane,
    }
)
