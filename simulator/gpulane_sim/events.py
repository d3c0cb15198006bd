"""Simulator events and the heap that orders them.

One sort key, defined once: (time, kind rank, sequence). At equal times, iterations end before
transfers land, both before arrivals, and one scheduling pass runs last, so a cycle sees every
departure and arrival of that instant. The sequence counter lives on the queue instance.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpulane_core.model import JobId

LaneKey = tuple[str, int, str]  # node, GPU index, lane id (or "gpu" when the GPU runs one lane)
GpuKey = tuple[str, int]


class EventKind(enum.IntEnum):
    ITERATION_DONE = 0
    TRANSFER_DONE = 1
    ARRIVAL = 2
    SCHEDULE = 3


@dataclass(frozen=True, slots=True)
class Transfer:
    gpu: GpuKey
    lane: LaneKey
    job: JobId
    prefetch: bool
    epoch: int
    seconds: float
    nbytes: int


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    job: JobId | None = None
    lane: LaneKey | None = None
    epoch: int = 0
    start_s: float = 0.0
    transfer: Transfer | None = None


@dataclass(slots=True)
class EventQueue:
    _heap: list[tuple[float, EventKind, int, Event]] = field(default_factory=list)
    _seq: int = 0
    # Preloaded events (every arrival of a trace), latest first: a sorted list beside the heap, so the
    # heap holds only what is in flight (hundreds, not a trace's 100,000 arrivals) and pops stay short.
    _ahead: list[tuple[float, EventKind, Event]] = field(default_factory=list)

    def preload(self, items: Iterable[tuple[float, Event]]) -> None:
        """Events known before the run, in the order pushing them first would give them: by time and
        kind, ties in the given order, and ahead of any event pushed later at the same time and kind
        (their sequence numbers would have been the lowest)."""
        if self._heap or self._ahead:
            raise ValueError("preload: only into an empty queue")
        ordered = sorted(items, key=lambda item: (item[0], item[1].kind))  # stable
        self._ahead = [(time_s, event.kind, event) for time_s, event in reversed(ordered)]

    def push(self, time_s: float, event: Event) -> None:
        self._seq += 1
        # The kind itself (an IntEnum compares as its int): no int() call per event.
        heapq.heappush(self._heap, (time_s, event.kind, self._seq, event))

    def pop(self) -> tuple[float, Event]:
        ahead = self._ahead
        if ahead:
            time_s, kind, event = ahead[-1]
            heap = self._heap
            if not heap or time_s < heap[0][0] or (time_s == heap[0][0] and kind <= heap[0][1]):
                ahead.pop()
                return time_s, event
        time_s, _, _, event = heapq.heappop(self._heap)
        return time_s, event

    def __len__(self) -> int:
        return len(self._heap) + len(self._ahead)
