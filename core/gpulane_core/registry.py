"""Explicit registration of placement profiles: names to factories, filled by a function.

Nothing registers itself at import (scheduler-plugins' ``app.WithPlugin`` style). The scheduler asks
:func:`default_registry` for the built-in profiles; other core packages contribute theirs through a
register function passed in ``extra`` (e.g. the fragmentation-aware family).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gpulane_core.framework import Profile, WeightedScore
from gpulane_core.plugins.binpack import Binpack
from gpulane_core.plugins.filters import GpuType, HealthyGpus
from gpulane_core.plugins.lane_aware import KeepWholeGpus, LaneFit
from gpulane_core.plugins.spread import Spread

ProfileFactory = Callable[[], Profile]


@dataclass(slots=True)
class Registry:
    """Placement profiles by name; one instance per scheduler, never module-global."""

    placements: dict[str, ProfileFactory] = field(default_factory=dict)

    def register_placement(self, name: str, factory: ProfileFactory) -> None:
        if name in self.placements:
            raise ValueError(f"placement policy {name!r} is registered twice")
        self.placements[name] = factory

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


def gpulane_profile() -> Profile:
    return Profile(
        "gpulane",
        _FILTERS,
        (WeightedScore(Binpack(), 2), WeightedScore(KeepWholeGpus(), 2), WeightedScore(LaneFit(), 1)),
    )


def register_builtin(registry: Registry) -> None:
    registry.register_placement("binpack", binpack_profile)
    registry.register_placement("spread", spread_profile)
    registry.register_placement("gpulane", gpulane_profile)


def default_registry(extra: Iterable[Callable[[Registry], None]] = ()) -> Registry:
    registry = Registry()
    register_builtin(registry)
    for register in extra:
        register(registry)
    return registry
