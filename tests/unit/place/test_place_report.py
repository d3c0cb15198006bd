"""Summaries over seeds and the comparison table."""

from __future__ import annotations

import pytest
from gpulane_sim.place.experiment import RunResult
from gpulane_sim.place.report import format_table, json_document, summarize


def result(policy: str, seed: int, final: int) -> RunResult:
    # capacity 1000 milli: arrivals of 650 and 1300 milli (65% and 130%), allocations 600 and final
    return RunResult(policy, seed, 1000, (650, 1300), (600, final), 1, 0.5)


def test_summaries_average_over_seeds_and_keep_policy_order() -> None:
    runs = [result("fgd", 1, 900), result("random", 1, 800), result("fgd", 2, 940)]
    fgd, rnd = summarize(runs)
    assert (fgd.policy, rnd.policy) == ("fgd", "random")
    assert fgd.seeds == (1, 2) and fgd.final == pytest.approx(0.92)
    assert fgd.at_130 == (0.9, 0.94)
    assert dict(fgd.curve)[130] == pytest.approx(0.92) and dict(fgd.curve)[65] == pytest.approx(0.6)
    assert 64 in dict(fgd.curve) and 100 not in dict(fgd.curve)  # empty buckets borrow only +-1
    table = format_table([fgd, rnd], {"fgd": 0.9})
    assert "| fgd | 92.00% | 92.00% | 90.00-94.00% | 1 | 90.00% | +2.00 | - |" in table
    gapped = format_table([fgd], {"fgd": 0.9}, {"fgd": {65: 0.5, 130: 0.9}})
    assert "| 10.00 @65% |" in gapped
    assert "| random | 80.00% |" in table and "| - | - |" in table
    doc = json_document([fgd], {"seeds": [1, 2]})
    assert doc["policies"]["fgd"]["final_allocation_ratio"] == pytest.approx(0.92)
    assert doc["policies"]["fgd"]["curve"][-1] == [130, pytest.approx(0.92)]
