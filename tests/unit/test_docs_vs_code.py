"""Every env variable, flag and chart value the docs name exists in the code, and every one the code
defines is documented (README.md, docs/*.md, charts/gpulane/README.md); see docnames for the rules."""

from __future__ import annotations

import re

import docnames
import pytest

TEXTS = docnames.doc_texts()


def test_docs_and_code_name_the_same_things() -> None:
    report = docnames.check(TEXTS)
    assert report.undefined == (), "named in the docs, unknown to the code"
    assert report.undocumented == (), "defined by the code, named nowhere in the docs"


def _without(name: str) -> dict[str, str]:
    """The docs with every mention of ``name`` removed (as if nobody had documented it)."""
    pattern = re.compile(re.escape(name) + r"(?![\w-])")
    return {page: pattern.sub("", text) for page, text in TEXTS.items()}


@pytest.mark.parametrize(
    ("name", "finding"),
    [
        ("GPULANE_JOB", "env GPULANE_JOB"),  # a pod-contract variable (a literal in the code)
        ("GPULANE_SCHEDULING_ORDERING", "env GPULANE_SCHEDULING_ORDERING"),  # a deprecated alias
        ("GPULANE_AGENT_CONFIG", "env GPULANE_AGENT_CONFIG"),  # a settings-file variable
        ("--fake-config", "flag --fake-config"),
        ("--turn-timeout", "flag --turn-timeout"),  # the standalone coordinator's parser
        ("--[no-]preemption", "flag --no-preemption"),  # BooleanOptionalAction's negation
        ("`coordinator.turns.window_s`", "agent setting coordinator.turns.window_s (in docs/agent.md)"),
        ("nodeAgent.settings.coordinator.turns.policy", "chart value nodeAgent.settings.coordinator.turns.policy"),
    ],
)
def test_the_check_fails_when_a_documented_name_is_removed(name: str, finding: str) -> None:
    assert docnames.check(TEXTS).ok
    report = docnames.check(_without(name))
    assert finding in report.undocumented, report


def test_the_check_fails_when_the_docs_name_something_the_code_lacks() -> None:
    extra = dict(TEXTS)
    extra["README.md"] += (
        "\nSet `GPULANE_OPERATOR_SCHEDULING_COLOUR`, pass `--colour` or the chart value `operator.colour`.\n"
    )
    report = docnames.check(extra)
    assert report.undefined == (
        "chart value operator.colour", "env GPULANE_OPERATOR_SCHEDULING_COLOUR", "flag --colour",
    )  # fmt: skip


def test_patterns_are_not_names() -> None:
    names = docnames.documented(["`GPULANE_AGENT_<SECTION>_<FIELD>`, `GPULANE_OPERATOR_*`, `--[no-]backfill`"])
    assert names.env == frozenset() and names.flags == {"--backfill", "--no-backfill"}
