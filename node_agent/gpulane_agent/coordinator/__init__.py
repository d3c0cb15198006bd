"""The node's lane-turn coordinator: jobs sharing a Salus lane take iteration turns, one at a time.

Why: jobs in one lane share its ephemeral memory, so only one may run an iteration at a time; the
order (a ``gpulane_core.ordering`` policy over windowed statistics) and an early prefetch signal to
the next job decide how much of the switching cost hides under compute (seed 000, PipeSwitch).

Public API for the agent::

    from gpulane_agent.coordinator import CoordinatorServer, CoordinatorSettings, TurnSettings

    server = CoordinatorServer(CoordinatorSettings(socket_path=..., hostname=node), clock=MonotonicClock())
    await server.start()            # binds the unix socket (creates the directory, replaces a stale file)
    registry.register(server.collector())   # prometheus Collector: gpulane_lane_turns_total, ...
    ...
    await server.stop()             # closes every connection and removes the socket file

Layers: ``protocol`` (wire messages, parsing) and ``settings`` are leaves; ``machine`` (+ ``lane``,
``metrics``) is the pure state machine; ``server`` (asyncio, thin) applies its effects; ``collector``
exports its metric snapshots. Wire protocol and client API: ``docs/coordinator.md``.
"""

from gpulane_agent.coordinator.collector import TurnCollector
from gpulane_agent.coordinator.machine import Coordinator
from gpulane_agent.coordinator.server import Clock, CoordinatorServer, MonotonicClock
from gpulane_agent.coordinator.settings import CoordinatorSettings, TurnSettings

__all__ = ["Clock", "Coordinator", "CoordinatorServer", "CoordinatorSettings", "MonotonicClock", "TurnCollector", "TurnSettings"]
