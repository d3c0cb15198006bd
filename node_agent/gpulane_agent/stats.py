"""Counters the agent's loops increment and the exporter renders (allocations, backend errors, violations).

They live on an instance passed to whoever counts, not in module globals, and are guarded by a lock
because the exporter reads them from its HTTP thread while the asyncio loop writes.
"""

from __future__ import annotations

import threading
from collections import Counter


class AgentStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allocations: Counter[str] = Counter()
        self._backend_errors: Counter[str] = Counter()
        self._violations: Counter[tuple[str, str, str, str]] = Counter()

    def allocation(self, result: str) -> None:
        with self._lock:
            self._allocations[result] += 1

    def backend_error(self, operation: str) -> None:
        with self._lock:
            self._backend_errors[operation] += 1

    def violation(self, namespace: str, pod: str, lane: str, action: str) -> None:
        with self._lock:
            self._violations[(namespace, pod, lane, action)] += 1

    def allocations(self) -> dict[str, int]:
        with self._lock:
            return dict(self._allocations)

    def backend_errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._backend_errors)

    def violations(self) -> dict[tuple[str, str, str, str], int]:
        with self._lock:
            return dict(self._violations)
