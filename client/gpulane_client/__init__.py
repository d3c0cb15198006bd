"""gpulane_client: the small library a training loop uses to take lane turns and prefetch.

Jobs that share a gpulane lane run one iteration at a time; the node agent's coordinator decides the
order and tells the next job to prefetch while the current one computes. Standard library only (torch
is optional and imported lazily by :mod:`gpulane_client.torch`)::

    from gpulane_client import Lane

    lane = Lane.from_env(working_set_bytes=model_bytes)   # standalone (warns once) without an agent
    lane.on_prefetch(lambda event: swapper.prefetch())    # runs on the client's reader thread
    lane.on_evict(lambda event: swapper.offload())
    for batch in lane.iterate(loader):                    # one turn per batch
        train_step(batch)
    lane.close()

Wire protocol and full API: ``docs/coordinator.md``.
"""

from gpulane_client.grouping import Grouping, GroupPlan, plan_groups
from gpulane_client.lane import (
    EvictEvent,
    Lane,
    LaneConfig,
    LaneError,
    LaneEvictedError,
    PrefetchEvent,
    StandaloneWarning,
    Turn,
)

__all__ = [
    "EvictEvent",
    "GroupPlan",
    "Grouping",
    "Lane",
    "LaneConfig",
    "LaneError",
    "LaneEvictedError",
    "PrefetchEvent",
    "StandaloneWarning",
    "Turn",
    "plan_groups",
]
