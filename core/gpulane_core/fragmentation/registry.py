"""Placement policies by name: an enum-keyed registry, built by a function (never at import)."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence

from gpulane_core.fragmentation.baselines import (
    BestFitPolicy,
    DotProductPolicy,
    GpuClusteringPolicy,
    GpuPackingPolicy,
    RandomPolicy,
)
from gpulane_core.fragmentation.fgd import FgdPolicy
from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.lanes_policy import GpulanePolicy
from gpulane_core.fragmentation.policy import ScorePlugin
from gpulane_core.fragmentation.types import TypicalPod


class PolicyName(enum.Enum):
    RANDOM = "random"
    DOTPROD = "dotprod"
    GPUPACKING = "gpupacking"
    GPUCLUSTERING = "gpuclustering"
    BESTFIT = "bestfit"
    FGD = "fgd"
    GPULANE = "gpulane"


# The FGD artifact's directory names, to find the published curves of each baseline.
PUBLISHED_NAMES: dict[PolicyName, str] = {
    PolicyName.RANDOM: "01-Random",
    PolicyName.DOTPROD: "02-DotProd",
    PolicyName.GPUCLUSTERING: "03-GpuClustering",
    PolicyName.GPUPACKING: "04-GpuPacking",
    PolicyName.BESTFIT: "05-BestFit",
    PolicyName.FGD: "06-FGD",
}

Factory = Callable[[Sequence[TypicalPod], int], ScorePlugin]


def _registry() -> dict[PolicyName, Factory]:
    return {
        PolicyName.RANDOM: lambda typical, seed: RandomPolicy(random.Random(seed)),
        PolicyName.DOTPROD: lambda typical, seed: DotProductPolicy(),
        PolicyName.GPUPACKING: lambda typical, seed: GpuPackingPolicy(),
        PolicyName.GPUCLUSTERING: lambda typical, seed: GpuClusteringPolicy(),
        PolicyName.BESTFIT: lambda typical, seed: BestFitPolicy(),
        PolicyName.FGD: lambda typical, seed: FgdPolicy(FragModel(typical)),
        PolicyName.GPULANE: lambda typical, seed: GpulanePolicy(FragModel(typical)),
    }


def parse_policies(text: str) -> tuple[PolicyName, ...]:
    """``"fgd,bestfit"`` -> policy names; ValueError naming the unknown one and the valid choices."""
    names: list[PolicyName] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        try:
            names.append(PolicyName(item))
        except ValueError:
            valid = ", ".join(p.value for p in PolicyName)
            raise ValueError(f"policy: unknown policy {raw.strip()!r} (valid: {valid})") from None
    if not names:
        raise ValueError("policy: no policy given")
    return tuple(dict.fromkeys(names))


def make_policy(name: PolicyName, typical: Sequence[TypicalPod], seed: int = 0) -> ScorePlugin:
    """A fresh plugin (with its own memo and RNG) for one experiment run."""
    return _registry()[name](typical, seed)
