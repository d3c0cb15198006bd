"""The pure verdict: which pods are over their lane limit and what to do about it.

A pod is judged per GPU: on each GPU of its assignment, the memory of all its processes there against
``gpulane.dev/memory-limit-mib`` (a per-GPU limit: a multi-GPU job has its lane on each GPU) plus a
tolerance; on a GPU it was not assigned, any use beyond the tolerance. Use under the limit on one GPU
never makes up for use over it on another. A pod is acted on once per excursion: it stays "flagged"
while it is over on some GPU and is forgotten when it drops back, so the next excursion counts again.
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
    gpu_uuid: str  # the GPU the pod is most over on
    used_mib: int  # its use on that GPU
    limit_mib: int  # its limit there: the lane limit, or 0 on a GPU it was not assigned
    action: Action
    assigned: bool = True  # whether gpu_uuid is one of the pod's GPUs

    @property
    def message(self) -> str:
        verb = "evicting it" if self.action is Action.EVICT else "reporting only (enforcement.policy=report)"
        if not self.assigned:
            return (
                f"pod {self.namespace}/{self.pod} uses {self.used_mib} MiB of GPU memory on GPU {self.gpu_uuid}, "
                f"which is not assigned to it (lane {self.lane}); {verb}"
            )
        return (
            f"pod {self.namespace}/{self.pod} uses {self.used_mib} MiB of GPU memory on GPU {self.gpu_uuid}, over "
            f"its lane limit of {self.limit_mib} MiB (lane {self.gpu_uuid}/{self.lane}); {verb}"
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
    used: dict[str, dict[str, int]] = {}
    for u in usage:
        on_gpu = used.setdefault(u.uid, {})
        on_gpu[u.gpu_uuid] = on_gpu.get(u.gpu_uuid, 0) + u.used_bytes
    over: set[str] = set()
    violations: list[Violation] = []
    for pl in lanes:
        excess: list[tuple[int, str, int, int]] = []  # (bytes over, GPU, used, limit MiB)
        for gpu_uuid, used_bytes in used.get(pl.uid, {}).items():
            limit_mib = pl.limit_mib if gpu_uuid in pl.gpu_uuids else 0
            beyond = used_bytes - (limit_mib + tolerance_mib) * MIB
            if beyond > 0:
                excess.append((beyond, gpu_uuid, used_bytes, limit_mib))
        if not excess:
            continue
        over.add(pl.uid)
        if pl.uid in flagged:
            continue
        _, gpu_uuid, used_bytes, limit_mib = max(excess)
        violations.append(Violation(pl.namespace, pl.pod, pl.uid, pl.lane, gpu_uuid, -(-used_bytes // MIB), limit_mib,
                                    policy, assigned=gpu_uuid in pl.gpu_uuids))
    return Verdict(tuple(violations), frozenset(over))
