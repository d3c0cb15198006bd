"""Policy comparisons over generated mixes: the figures behind the policy claims in docs/simulator.md.

``compare_mixes`` runs every policy with prefetch on and off over ``seeds`` mixes of one kind and
returns per-policy means of avg JCT and makespan relative to a reference policy, the ratio of
fifo's avg JCT to srtf's, and how often prefetch on was no worse than off. Pure over its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import mean

from gpulane_core.model import Job

from gpulane_sim.config import SimConfig
from gpulane_sim.engine import simulate
from gpulane_sim.mixes import MixSpec, generate_mix
from gpulane_sim.policies import SimPolicy

ONLINE = tuple(p for p in SimPolicy if p is not SimPolicy.GA)


@dataclass(frozen=True, slots=True)
class PolicyFigures:
    policy: str
    avg_jct_s: float  # mean over mixes
    makespan_s: float
    jct_vs_reference: float  # mean of per-mix ratios (policy / reference)
    makespan_vs_reference: float
    worst_jct_vs_reference: float  # max per-mix ratio
    worst_makespan_vs_reference: float
    prefetch_no_worse: int  # mixes where prefetch on was <= off on both avg JCT and makespan
    mixes: int


def compare_mixes(
    profiles: Sequence[Job],
    spec: MixSpec,
    seeds: Sequence[int],
    config: SimConfig,
    reference: SimPolicy = SimPolicy.PACK,
    policies: Sequence[SimPolicy] = ONLINE,
) -> list[PolicyFigures]:
    runs: dict[SimPolicy, list[tuple[dict[str, float], dict[str, float]]]] = {p: [] for p in policies}
    refs: list[dict[str, float]] = []
    for seed in seeds:
        jobs = generate_mix(profiles, replace(spec, seed=seed))
        refs.append(simulate(jobs, reference, config).summary())
        for policy in policies:
            on = simulate(jobs, policy, config).summary()
            off = simulate(jobs, policy, replace(config, prefetch=False)).summary()
            runs[policy].append((on, off))
    out: list[PolicyFigures] = []
    for policy in policies:
        ons = [on for on, _ in runs[policy]]
        jct = [on["avg_jct_s"] / ref["avg_jct_s"] for on, ref in zip(ons, refs, strict=True)]
        span = [on["makespan_s"] / ref["makespan_s"] for on, ref in zip(ons, refs, strict=True)]
        no_worse = sum(
            on["avg_jct_s"] <= off["avg_jct_s"] + 1e-9 and on["makespan_s"] <= off["makespan_s"] + 1e-9
            for on, off in runs[policy]
        )
        out.append(
            PolicyFigures(
                policy.value, mean(o["avg_jct_s"] for o in ons), mean(o["makespan_s"] for o in ons),
                mean(jct), mean(span), max(jct), max(span), no_worse, len(ons),
            )
        )  # fmt: skip
    return out
