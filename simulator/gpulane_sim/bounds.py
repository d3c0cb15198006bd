"""Lower bounds on average JCT, to say how far a policy is from what any policy could reach.

``avg_jct_lower_bound``: no schedule that runs one iteration at a time per GPU (every one-lane policy:
fifo, srtf, sjf, fair, weight) can finish its jobs sooner on average. Two relaxations, each a bound:

* **one fast machine.** Merge the ``m`` GPUs into one GPU ``m`` times as fast and let it preempt
  anywhere (no iterations, no memory limit, no transfers). Any schedule on the ``m`` GPUs is a
  schedule there (run the same work in the same instants), and on one machine shortest remaining
  processing time first (SRPT) minimises the sum of completion times (Schrage, 1968). A job's size is
  its GPU work: ``gpus x iterations x iteration_s``.
* **alone.** Every job takes at least its own ``iterations x iteration_s``.

The bound is the larger of the two sums, over the number of jobs. It does not hold for concurrent
lanes, where jobs may overlap on one GPU.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from gpulane_core.model import Job


def srpt_total_flow_s(jobs: Sequence[Job], speed: float) -> float:
    """Sum of (finish - arrival) under preemptive SRPT on one machine of ``speed`` GPUs."""
    if speed <= 0:
        raise ValueError(f"speed: must be positive, got {speed}")
    arrivals = sorted(jobs, key=lambda j: (j.arrival_s, j.name))
    ready: list[tuple[float, float]] = []  # (remaining GPU work, arrival)
    now, total, k = 0.0, 0.0, 0
    while k < len(arrivals) or ready:
        if not ready:
            now = max(now, arrivals[k].arrival_s)
        while k < len(arrivals) and arrivals[k].arrival_s <= now:
            job = arrivals[k]
            heapq.heappush(ready, (job.gpus * job.estimated_duration_s, job.arrival_s))
            k += 1
        work, arrival = heapq.heappop(ready)
        finish = now + work / speed
        if k < len(arrivals) and arrivals[k].arrival_s < finish:
            nxt = arrivals[k].arrival_s
            heapq.heappush(ready, (work - (nxt - now) * speed, arrival))
            now = nxt
            continue
        now = finish
        total += finish - arrival
    return total


def avg_jct_lower_bound(jobs: Sequence[Job], gpus: int) -> float:
    """The larger of the SRPT-on-one-fast-machine and run-alone bounds, per job (module docstring)."""
    if gpus < 1:
        raise ValueError(f"gpus: must be at least 1, got {gpus}")
    if not jobs:
        return 0.0
    alone = sum(j.estimated_duration_s for j in jobs)
    return max(srpt_total_flow_s(jobs, float(gpus)), alone) / len(jobs)
