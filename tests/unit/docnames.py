"""The names users type, as the docs spell them and as the code defines them, and how they disagree.

Three kinds of name: environment variables (``GPULANE_*``, ``KUBEBUILDER_ASSETS``), command-line
flags (``--x``) and chart values (``operator.x``, ``nodeAgent.x``, ``monitoring.x``).

* Docs: README.md, docs/*.md and the chart's README.md. ``--[no-]x`` counts as ``--x`` and
  ``--no-x``; a name followed by ``_<`` or ``*`` is a pattern, not a name.
* Code: every settings key of each component's tree (its env name through gpulane_core.settings,
  deprecated aliases and the ``GPULANE_<COMPONENT>_CONFIG`` variable), every ``GPULANE_*`` string
  literal in the components' sources (the pod contract's variables and the like), every long option
  of ``gpulane``'s parsers and ``python -m gpulane_dev.binaries``, and every key of the chart's
  values.yaml.

A settings env variable counts as documented when its *key* appears in the component's reference page
(the page states the scheme once); every other code name must appear verbatim somewhere in the docs.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("core", "operator", "node_agent", "simulator", "client", "devtools")
CHART_TOP = ("operator", "nodeAgent", "monitoring")
# Flags of other tools the docs show in commands; not gpulane's to define.
FOREIGN_FLAGS = frozenset({
    # helm, kubectl, mypy, apt-get
    "--create-namespace", "--values", "--wait", "--include-crds", "--kube-version", "--dry-run", "--help",
    "--reuse-values", "--server-side", "--all", "--strict", "--force-confdef", "--force-confold",
    "--no-install-recommends", "--install",
    # kube-apiserver and etcd, as the dev tools start them (docs/control-plane.md)
    "--authorization-mode", "--client-ca-file", "--disable-admission-plugins", "--endpoint-reconciler-type",
    "--service-cluster-ip-range", "--token-auth-file", "--unsafe-no-fsync",
    # the kubelet (docs/real-node.md)
    "--root-dir",
})  # fmt: skip
FLAG_SOURCES = (*SOURCES, "benchmarks", "hack")

_ENV = re.compile(r"\b(GPULANE_[A-Z0-9_]*[A-Z0-9]|KUBEBUILDER_ASSETS)(?![A-Za-z0-9_<*])")
_FLAG = re.compile(r"(?<![\w-])--(\[no-\])?([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])")
_ADD_ARGUMENT = re.compile(r"add_argument\(\s*(?:\"-\w\",\s*)?\"(--[a-z0-9-]+)\"")
_CHART = re.compile(rf"(?<![\w/.$-])((?:{'|'.join(CHART_TOP)})\.[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\b")
_NOT_VALUES = (".md", ".py", ".yaml", ".json", ".png", ".settings", ".com")


@dataclass(frozen=True)
class Names:
    env: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    chart: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Component:
    """One component's settings as the code defines them, and the page that documents them."""

    component: str
    page: str
    keys: frozenset[str]
    env: Mapping[str, str] = field(default_factory=dict)  # env name -> key


def doc_texts() -> dict[str, str]:
    paths = [ROOT / "README.md", ROOT / "charts" / "gpulane" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


def documented(texts: Iterable[str]) -> Names:
    env: set[str] = set()
    flags: set[str] = set()
    chart: set[str] = set()
    for text in texts:
        env.update(_ENV.findall(text))
        for negatable, name in _FLAG.findall(text):
            flags.add(f"--{name}")
            if negatable:
                flags.add(f"--no-{name}")
        chart.update(v for v in _CHART.findall(text) if not v.endswith(_NOT_VALUES))
    return Names(frozenset(env), frozenset(flags), frozenset(chart))


def components() -> list[Component]:
    from gpulane_agent.coordinator.settings import CoordinatorSettings
    from gpulane_agent.settings import AgentConfig
    from gpulane_core import settings
    from gpulane_dev.settings import ALIASES, DevSettings
    from gpulane_operator.settings import OperatorSettings, deprecated_env_names
    from gpulane_sim.settings import SimSettings

    def make(component: str, page: str, root: type[Any], aliases: Mapping[str, str] | None = None) -> Component:
        keys = frozenset(settings.keys(root))
        env = {settings.env_name(component, k): k for k in keys} | dict(aliases or {})
        env[settings.config_env(component)] = "(settings file)"
        return Component(component, page, keys, env)

    return [
        make("operator", "docs/operator.md", OperatorSettings, deprecated_env_names()),
        make("agent", "docs/agent.md", AgentConfig),
        make("coordinator", "docs/coordinator.md", CoordinatorSettings),
        make("sim", "docs/simulator.md", SimSettings),
        make("dev", "docs/control-plane.md", DevSettings, ALIASES),
    ]


def _parser_flags(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        yield from (o for o in action.option_strings if o.startswith("--") and o != "--help")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parser_flags(sub)


def code_flags() -> frozenset[str]:
    """Every long option of ``gpulane`` (its parsers, negations included) and of the repo's scripts."""
    from gpulane_core.cli import build_parser

    flags = set(_parser_flags(build_parser()))
    for folder in FLAG_SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            flags.update(_ADD_ARGUMENT.findall(path.read_text()))
    return frozenset(flags - {"--help"})


def code_env_literals() -> frozenset[str]:
    found: set[str] = set()
    # The e2e tier's own switch (GPULANE_E2E_CLUSTER) is read by the tests, not by a component.
    for folder in (*SOURCES, "tests/e2e"):
        for path in (ROOT / folder).rglob("*.py"):
            if "_proto" in path.parts:
                continue
            found.update(re.findall(r"[\"'](GPULANE_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text()))
    return frozenset(found)


def chart_values() -> frozenset[str]:
    """The chart's keys as its README documents them: down to the leaves the schema declares."""
    chart = ROOT / "charts" / "gpulane"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())

    def walk(node: Any, sch: Mapping[str, Any], path: str) -> Iterator[str]:
        yield path
        if isinstance(node, dict) and node and "properties" in sch:
            for key, sub in node.items():
                yield from walk(sub, sch["properties"].get(key, {}), f"{path}.{key}")

    return frozenset(p for top in CHART_TOP for p in walk(values[top], schema["properties"][top], top))


@dataclass(frozen=True)
class Report:
    undefined: tuple[str, ...]  # named in the docs, unknown to the code
    undocumented: tuple[str, ...]  # defined by the code, named nowhere in the docs

    @property
    def ok(self) -> bool:
        return not self.undefined and not self.undocumented


def check(texts: Mapping[str, str]) -> Report:
    """Compare the docs ``texts`` (page -> markdown) with the code."""
    docs = documented(texts.values())
    comps = components()
    settings_env = {name for c in comps for name in c.env}
    literal_env = code_env_literals()
    flags = code_flags()
    values = chart_values()
    undefined = sorted(
        [f"env {n}" for n in docs.env - settings_env - literal_env - {"KUBEBUILDER_ASSETS"}]
        + [f"flag {f}" for f in docs.flags - flags - FOREIGN_FLAGS]
        + [f"chart value {v}" for v in docs.chart if not _defined_value(v, values)]
    )
    undocumented: list[str] = []
    for c in comps:
        page = texts.get(c.page, "")
        undocumented += [f"{c.component} setting {k} (in {c.page})" for k in sorted(c.keys) if f"`{k}`" not in page]
        aliases = {n for n, k in c.env.items() if n != _scheme(c.component, k)}
        undocumented += [f"env {n}" for n in sorted(aliases - docs.env)]
    undocumented += [f"env {n}" for n in sorted(literal_env - docs.env - settings_env)]
    undocumented += [f"flag {f}" for f in sorted(flags - docs.flags)]
    undocumented += [f"chart value {v}" for v in sorted(values - docs.chart) if not _is_section(v, values)]
    return Report(tuple(undefined), tuple(undocumented))


def _scheme(component: str, key: str) -> str:
    from gpulane_core.settings import env_name

    return env_name(component, key)


def _defined_value(value: str, values: frozenset[str]) -> bool:
    """``monitoring.serviceMonitor.labels.release`` is defined by the free-form map ``...labels``."""
    parts = value.split(".")
    return any(".".join(parts[:n]) in values for n in range(len(parts), 1, -1))


def _is_section(value: str, values: frozenset[str]) -> bool:
    """A value with children is documented through them (the chart README lists leaves)."""
    return any(v.startswith(value + ".") for v in values)
