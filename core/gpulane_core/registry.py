"""The one placement registry: every algorithm under one name, as a framework profile; filled by functions.

Nothing registers itself at import (scheduler-plugins' ``app.WithPlugin`` style).
:func:`default_registry` holds the lane-aware profiles (``gpulane``, ``binpack``, ``spread``) and,
through :func:`gpulane_core.fragmentation.family.register_family`, the FGD family (``fgd``,
``fgd-balance``, ``bestfit``, ``dotprod``, ``gpupacking``, ``gpuclustering``, ``random``); ``extra``
register functions add more. The operator and ``simulate`` run ``profile(name)``; ``place`` runs
``scorer(name, ...)``: a member's native milli scorer, or the profile through
:class:`~gpulane_core.fragmentation.bridge.ProfileScorer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpulane_core.framework import Profile, WeightedScore
from gpulane_core.plugins.binpack import Binpack
from gpulane_core.plugins.delay import WaitForLeastWork
from gpulane_core.plugins.filters import GpuType, HealthyGpus
from gpulane_core.plugins.lane_aware import KeepWholeGpus, LaneFit
from gpulane_core.plugins.late_binding import JoinWhenFirst
from gpulane_core.plugins.spread import Spread
from gpulane_core.plugins.workahead import LeastWorkAhead

if TYPE_CHECKING:
    from gpulane_core.fragmentation.policy import NodeScorer
    from gpulane_core.fragmentation.types import TypicalPod

ProfileFactory = Callable[[], Profile]
ScorerFactory = Callable[[Sequence["TypicalPod"], int], "NodeScorer"]


@dataclass(slots=True)
class Registry:
    """Placement algorithms by name; one instance per scheduler, never module-global."""

    placements: dict[str, ProfileFactory] = field(default_factory=dict)
    scorers: dict[str, ScorerFactory] = field(default_factory=dict)  # native milli scorers (FGD family)
    summaries: dict[str, str] = field(default_factory=dict)

    def register_placement(self, name: str, factory: ProfileFactory) -> None:
        self.register_algorithm(name, factory)

    def register_algorithm(
        self, name: str, profile: ProfileFactory, *, scorer: ScorerFactory | None = None, summary: str = ""
    ) -> None:
        """One algorithm, one name: its profile, and optionally a native scorer for ``place``."""
        if name in self.placements:
            raise ValueError(f"placement policy {name!r} is registered twice")
        self.placements[name] = profile
        if scorer is not None:
            self.scorers[name] = scorer
        if summary:
            self.summaries[name] = summary

    def scorer(self, name: str, typical: Sequence[TypicalPod], seed: int = 0) -> NodeScorer:
        """A fresh milli scorer for ``place``: the native one, else the profile through a bridge."""
        native = self.scorers.get(name)
        if native is not None:
            return native(typical, seed)
        from gpulane_core.fragmentation.bridge import ProfileScorer

        return ProfileScorer(name, self.profile(name))

    def parse(self, text: str, what: str = "policy") -> tuple[str, ...]:
        """``"fgd, BestFit,fgd"`` -> ``("fgd", "bestfit")``; ValueError naming an unknown one and the known."""
        names: list[str] = []
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item not in self.placements:
                raise ValueError(f"{what}: unknown policy {raw.strip()!r} (valid: {', '.join(self.names())})")
            names.append(item)
        if not names:
            raise ValueError(f"{what}: no policy given")
        return tuple(dict.fromkeys(names))

    def profile(self, name: str) -> Profile:
        """A fresh profile for ``name``; ValueError naming the unknown policy and the known ones."""
        factory = self.placements.get(name)
        if factory is None:
            known = ", ".join(sorted(self.placements))
            raise ValueError(f"placement: unknown placement policy {name!r} (known: {known})")
        profile = factory()
        problems = profile.validate()
        if problems:
            raise ValueError("; ".join(problems))
        return profile

    def names(self) -> list[str]:
        return sorted(self.placements)


_FILTERS = (HealthyGpus(), GpuType())


def binpack_profile() -> Profile:
    return Profile("binpack", _FILTERS, (WeightedScore(Binpack(), 1),))


def spread_profile() -> Profile:
    return Profile("spread", _FILTERS, (WeightedScore(Spread(), 1),))


def least_work_profile() -> Profile:
    # Ties (every idle GPU scores 1) go to the emptiest GPU, then the lowest index.
    # A job whose least-work GPU is full for now waits for it rather than bind where it is stranded.
    return Profile(
        "least-work",
        (*_FILTERS, WaitForLeastWork()),
        (WeightedScore(LeastWorkAhead(), 4), WeightedScore(Spread(), 1)),
    )


def gpulane_profile() -> Profile:
    return Profile(
        "gpulane",
        _FILTERS,
        (WeightedScore(Binpack(), 2), WeightedScore(KeepWholeGpus(), 2), WeightedScore(LaneFit(), 1)),
    )


def gpulane_late_profile() -> Profile:
    # gpulane's scores; a job joins a busy lane only when shortest-first turns would serve it first.
    return Profile("gpulane-late", (*_FILTERS, JoinWhenFirst()), gpulane_profile().scores)


def register_builtin(registry: Registry) -> None:
    registry.register_algorithm("binpack", binpack_profile, summary="lane-aware: fullest GPU first")
    registry.register_algorithm("spread", spread_profile, summary="lane-aware: emptiest GPU first")
    registry.register_algorithm(
        "least-work", least_work_profile, summary="one iteration at a time per GPU: least added waiting (SRPT dispatch)"
    )
    registry.register_algorithm(
        "gpulane", gpulane_profile, summary="lane-aware: binpack + keep whole GPUs free + lane fit (default)"
    )
    registry.register_algorithm(
        "gpulane-late",
        gpulane_late_profile,
        summary="gpulane, joining a busy lane only when shortest-first turns serve the job first (else it waits unbound)",
    )


def default_registry(extra: Iterable[Callable[[Registry], None]] = ()) -> Registry:
    from gpulane_core.fragmentation.family import register_family

    registry = Registry()
    register_builtin(registry)
    register_family(registry)
    for register in extra:
        register(registry)
    return registry
