"""The FGD family (the published baselines, FGD, and FGD with CPU balance) and how each is built.

Each member is a :class:`~gpulane_core.fragmentation.policy.NodeScorer`; :func:`register_family`
puts all of them, each under its one name, into the placement registry
(:mod:`gpulane_core.registry`), so the operator, ``simulate`` and ``place`` use the same names.
"""

from __future__ import annotations

import enum
import functools
import random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from gpulane_core.fragmentation.baselines import (
    BestFitPolicy,
    DotProductPolicy,
    GpuClusteringPolicy,
    GpuPackingPolicy,
    RandomPolicy,
)
from gpulane_core.fragmentation.bridge import family_profile
from gpulane_core.fragmentation.fgd import FgdPolicy
from gpulane_core.fragmentation.frag import FragModel
from gpulane_core.fragmentation.lanes_policy import FgdBalancePolicy
from gpulane_core.fragmentation.policy import NodeScorer
from gpulane_core.fragmentation.types import TypicalPod
from gpulane_core.framework import Profile

if TYPE_CHECKING:
    from gpulane_core.registry import Registry


class PolicyName(enum.Enum):
    RANDOM = "random"
    DOTPROD = "dotprod"
    GPUPACKING = "gpupacking"
    GPUCLUSTERING = "gpuclustering"
    BESTFIT = "bestfit"
    FGD = "fgd"
    FGD_BALANCE = "fgd-balance"  # named "gpulane" before 0.2; "gpulane" is the lane-aware profile


# The FGD artifact's directory names, to find the published curves of each baseline.
PUBLISHED_NAMES: dict[str, str] = {
    PolicyName.RANDOM.value: "01-Random",
    PolicyName.DOTPROD.value: "02-DotProd",
    PolicyName.GPUCLUSTERING.value: "03-GpuClustering",
    PolicyName.GPUPACKING.value: "04-GpuPacking",
    PolicyName.BESTFIT.value: "05-BestFit",
    PolicyName.FGD.value: "06-FGD",
}

ScorerFactory = Callable[[Sequence[TypicalPod], int], NodeScorer]

_SUMMARIES: dict[PolicyName, str] = {
    PolicyName.RANDOM: "FGD baseline: a random feasible node",
    PolicyName.DOTPROD: "FGD baseline: largest dot product of demand and free resources",
    PolicyName.GPUPACKING: "FGD baseline: occupied GPUs first, then used nodes, then idle ones",
    PolicyName.GPUCLUSTERING: "FGD baseline: pods of one GPU class together",
    PolicyName.BESTFIT: "FGD baseline: least weighted free resource left",
    PolicyName.FGD: "Fragmentation Gradient Descent (ATC'23): least growth of fragmentation",
    PolicyName.FGD_BALANCE: "FGD plus CPU-GPU balance (stranded GPU share), gpulane's cluster policy",
}


def _random(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return RandomPolicy(random.Random(seed))


def _dotprod(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return DotProductPolicy()


def _gpupacking(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return GpuPackingPolicy()


def _gpuclustering(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return GpuClusteringPolicy()


def _bestfit(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return BestFitPolicy()


def _fgd(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return FgdPolicy(FragModel(typical))


def _fgd_balance(typical: Sequence[TypicalPod], seed: int) -> NodeScorer:
    return FgdBalancePolicy(FragModel(typical))


_FACTORIES: Mapping[PolicyName, ScorerFactory] = MappingProxyType({
    PolicyName.RANDOM: _random,
    PolicyName.DOTPROD: _dotprod,
    PolicyName.GPUPACKING: _gpupacking,
    PolicyName.GPUCLUSTERING: _gpuclustering,
    PolicyName.BESTFIT: _bestfit,
    PolicyName.FGD: _fgd,
    PolicyName.FGD_BALANCE: _fgd_balance,
})


def make_policy(name: PolicyName, typical: Sequence[TypicalPod], seed: int = 0) -> NodeScorer:
    """A fresh scorer (with its own memo and RNG) for one experiment run."""
    return _FACTORIES[name](typical, seed)


# (name, profile factory, scorer factory, summary) per member, built once: immutable.
_MEMBERS: tuple[tuple[str, Callable[[], Profile], ScorerFactory, str], ...] = tuple(
    (
        name.value,
        functools.partial(family_profile, name.value, factory, symmetric=name is not PolicyName.RANDOM),
        factory,
        _SUMMARIES[name],
    )
    for name, factory in _FACTORIES.items()
)


def register_family(registry: Registry) -> None:
    """Register every member under its name: a framework profile plus its native milli scorer."""
    for name, profile, scorer, summary in _MEMBERS:
        registry.register_algorithm(name, profile, scorer=scorer, summary=summary)
