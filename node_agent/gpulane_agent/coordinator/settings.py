"""Typed settings for the lane-turn coordinator, split into pure decision knobs and server knobs.

The agent builds one :class:`CoordinatorSettings` from its own configuration and passes it in; the
coordinator never reads the environment or files itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpulane_core.ordering import OrderingPolicy
from gpulane_core.turns import Discipline

DEFAULT_SOCKET = "/var/run/gpulane/coordinator.sock"


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What the pure state machine needs to decide who holds a lane.

    ``round_policies`` lists the policies whose order is a *round* (every member gets one turn per
    round, in the order computed at the round's start: seed 000's window). The others are *strict*
    (Salus): the first waiting job in the policy's order always wins, so ``fifo`` runs the earliest
    job until it leaves and ``fair`` rotates because attained time changes after every turn.
    """

    policy: OrderingPolicy = OrderingPolicy.WEIGHT
    round_policies: frozenset[OrderingPolicy] = frozenset({OrderingPolicy.WEIGHT})
    turn_timeout_s: float = 10.0  # minimum time a holder has before it loses the turn
    timeout_factor: float = 4.0  # ... or this many times its longest observed/estimated iteration
    max_missed_deadlines: int = 3  # consecutive misses before eviction from the lane
    window_s: float = 60.0  # sliding window for compute/idle/transfer statistics ...
    window_max_turns: int = 32  # ... holding at most this many turns per job (bounds the work per decision)
    assumed_h2d_bytes_per_s: float = 12e9  # penalty estimate before a transfer time is reported
    offload_on_switch: bool = True  # tell the previous holder it may offload when another job starts
    # A closed lane's counters stay exported this long (several scrapes see its last increments), then
    # go: lane ids are never reused, so keeping them forever would grow every scrape without bound.
    closed_lane_metrics_s: float = 300.0

    @property
    def rounds(self) -> bool:
        return self.policy in self.round_policies

    @property
    def discipline(self) -> Discipline:
        """How turns pass (:mod:`gpulane_core.turns`): rounds for ``round_policies``, else strict."""
        return Discipline.ROUNDS if self.rounds else Discipline.STRICT

    def validate(self) -> list[str]:
        """Field-named reasons why these settings are unusable; empty when fine."""
        problems: list[str] = []
        if self.turn_timeout_s <= 0:
            problems.append(f"turn_timeout_s: must be positive, got {self.turn_timeout_s}")
        if self.timeout_factor < 0:
            problems.append(f"timeout_factor: must not be negative, got {self.timeout_factor}")
        if self.max_missed_deadlines < 1:
            problems.append(f"max_missed_deadlines: must be at least 1, got {self.max_missed_deadlines}")
        if self.window_max_turns < 1:
            problems.append(f"window_max_turns: must be at least 1, got {self.window_max_turns}")
        if self.window_s <= 0:
            problems.append(f"window_s: must be positive, got {self.window_s}")
        if self.assumed_h2d_bytes_per_s <= 0:
            problems.append(f"assumed_h2d_bytes_per_s: must be positive, got {self.assumed_h2d_bytes_per_s}")
        if self.closed_lane_metrics_s < 0:
            problems.append(f"closed_lane_metrics_s: must not be negative, got {self.closed_lane_metrics_s}")
        return problems


@dataclass(frozen=True, slots=True)
class CoordinatorSettings:
    """The socket server around the state machine."""

    socket_path: str = DEFAULT_SOCKET
    socket_mode: int = 0o666  # pods run as arbitrary users; the host directory is the boundary
    hostname: str = ""  # the ``Hostname`` metric label
    max_message_bytes: int = 65536
    turns: TurnSettings = field(default_factory=TurnSettings)

    def validate(self) -> list[str]:
        problems = [f"turns.{p}" for p in self.turns.validate()]
        if not self.socket_path.startswith("/"):
            problems.append(f"socket_path: must be an absolute path, got {self.socket_path!r}")
        if self.max_message_bytes < 1024:
            problems.append(f"max_message_bytes: must be at least 1024, got {self.max_message_bytes}")
        return problems
