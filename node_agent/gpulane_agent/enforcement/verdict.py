"""The pure verdict: which pods are over their lane limit and what to do about it.

A pod is judged on the memory of all its processes (every GPU) against ``gpulane.dev/memory-limit-mib``
plus a tolerance. A pod is acted on once per excursion: it stays "flagged" while it is over and is
forgotten when it drops back, so the next excursion counts again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpulane_core.quantity import MIB

from gpulane_agent.lanes import ContainerUsage, PodLane
from gpulane_agent.settings import EnforcementPolicy

# What a violation triggers is the configured policy itself (``report`` or ``evict``).
Action = EnforcementPolicy


@dataclass(frozen=True, slots=True)
class Violation:
    namespace: str
    pod: str
    uid: str
    lane: str
    gpu_uuid: str
    used_mib: int
    limit_mib: int
    action: Action

    @property
    def message(self) -> str:
        verb = "evicting it" if self.action is Action.EVICT else "reporting only (enforcement.policy=report)"
        return (
            f"pod {self.namespace}/{self.pod} uses {self.used_mib} MiB of GPU memory, over its lane limit of "
            f"{self.limit_mib} MiB (lane {self.gpu_uuid}/{self.lane}); {verb}"
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    violations: tuple[Violation, ...]  # new excursions to act on now
    over: frozenset[str]  # uids over their limit now (the next call's ``flagged``)


def judge(
    lanes: Sequence[PodLane],
    usage: Iterable[ContainerUsage],
    policy: EnforcementPolicy,
    tolerance_mib: int,
    flagged: frozenset[str],
) -> Verdict:
    used: dict[str, int] = {}
    for u in usage:
        used[u.uid] = used.get(u.uid, 0) + u.used_bytes
    over: set[str] = set()
    violations: list[Violation] = []
    for pl in lanes:
        if pl.limit_mib is None:
            continue
        used_bytes = used.get(pl.uid, 0)
        if used_bytes <= (pl.limit_mib + tolerance_mib) * MIB:
            continue
        over.add(pl.uid)
        if pl.uid in flagged:
            continue
        violations.append(
            Violation(pl.namespace, pl.pod, pl.uid, pl.lane, pl.gpu_uuid, -(-used_bytes // MIB), pl.limit_mib, policy)
        )
    return Verdict(tuple(violations), frozenset(over))
