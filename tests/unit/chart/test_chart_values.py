"""The chart's values, schema, README and templates stay in step.

Every configurable key in values.yaml must be described in the chart README's table and declared in
values.schema.json (and nothing undocumented may be declared); every `.Values.x` a template reads must
exist; the default fake-backend config must be one the agent accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "gpulane"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
README = (CHART / "README.md").read_text()


def documented_keys(values: Any, schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Dotted keys a user sets: descend while the schema declares properties, stop at free-form maps."""
    if isinstance(values, dict) and "properties" in schema and values:
        for key, sub in values.items():
            child = f"{path}.{key}" if path else key
            if key not in schema["properties"]:
                yield f"UNDECLARED:{child}"
                continue
            yield from documented_keys(sub, schema["properties"][key], child)
    else:
        yield path


def schema_leaves(schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    props = schema.get("properties")
    if not props:
        yield path
        return
    for key, sub in props.items():
        yield from schema_leaves(sub, f"{path}.{key}" if path else key)


def readme_keys() -> set[str]:
    return set(re.findall(r"^\| `([\w.]+)` \|", README, flags=re.MULTILINE))


KEYS = sorted(documented_keys(VALUES, SCHEMA))


def test_every_key_is_declared_in_the_schema() -> None:
    assert [k for k in KEYS if k.startswith("UNDECLARED:")] == []


def test_schema_declares_nothing_values_yaml_lacks() -> None:
    extra = set(schema_leaves(SCHEMA)) - set(KEYS) - {"global"}
    # a declared object whose default is empty (e.g. {}) is documented as one key
    extra = {k for k in extra if not any(k.startswith(d + ".") for d in KEYS)}
    assert extra == set()


@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_in_the_readme(key: str) -> None:
    assert key in readme_keys()


def test_readme_lists_no_stale_key() -> None:
    assert readme_keys() - set(KEYS) == set()


def test_every_declared_property_has_a_description_or_type() -> None:
    def walk(node: Mapping[str, Any], path: str) -> Iterator[str]:
        for key, sub in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            if "type" not in sub and "anyOf" not in sub:
                yield here
            yield from walk(sub, here)

    assert list(walk(SCHEMA, "")) == []
    assert SCHEMA["additionalProperties"] is False


def _values_paths(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, dict):
        for key, sub in values.items():
            here = f"{path}.{key}" if path else key
            yield here
            yield from _values_paths(sub, here)


def test_templates_read_only_existing_values() -> None:
    known = set(_values_paths(VALUES))
    used: set[str] = set()
    for template in (CHART / "templates").rglob("*"):
        if not template.is_file():
            continue
        text = template.read_text()
        used.update(re.findall(r"\.Values\.([A-Za-z][\w.]*[A-Za-z0-9])", text))
        # aliases such as `$op := .Values.operator`, then `$op.ordering`
        for alias, base in re.findall(r"(\$\w+) := \.Values\.([\w.]+)", text):
            for rest in re.findall(re.escape(alias) + r"\.([A-Za-z][\w.]*[A-Za-z0-9])", text):
                used.add(f"{base}.{rest}")
    assert "operator.ordering" in used and "nodeAgent.backend" in used
    missing = {u for u in used if u not in known}
    assert missing == set()


def test_default_fake_config_is_accepted_by_the_agent() -> None:
    fake_spec = pytest.importorskip("gpulane_agent.gpu.fake_spec")
    spec = fake_spec.parse_spec(VALUES["nodeAgent"]["fakeConfig"], "node-a")
    assert len(spec.gpus) == 2


def test_kind_values_fake_config_is_accepted_by_the_agent() -> None:
    fake_spec = pytest.importorskip("gpulane_agent.gpu.fake_spec")
    kind = yaml.safe_load((CHART / "values-kind.yaml").read_text())
    assert kind["nodeAgent"]["backend"] == "fake"
    assert len(fake_spec.parse_spec(kind["nodeAgent"]["fakeConfig"], "kind-worker").gpus) == 4


def test_schema_enums_match_the_operator_and_agent() -> None:
    registry = pytest.importorskip("gpulane_core.registry")
    operator_cli = pytest.importorskip("gpulane_operator.cli")
    agent_settings = pytest.importorskip("gpulane_agent.settings")
    op = SCHEMA["properties"]["operator"]["properties"]
    assert op["placement"]["enum"] == registry.default_registry().names()
    assert tuple(op["ordering"]["enum"]) == operator_cli.ORDERINGS
    agent = SCHEMA["properties"]["nodeAgent"]["properties"]
    assert set(agent["backend"]["enum"]) == {k.value for k in agent_settings.BackendKind}
    assert set(agent["enforcement"]["enum"]) == {p.value for p in agent_settings.EnforcementPolicy}


def test_operator_runs_as_the_images_user() -> None:
    dockerfile = CHART.parents[1] / "operator" / "Dockerfile"
    if not dockerfile.exists():
        pytest.skip("operator/Dockerfile not present")
    user = re.findall(r"^USER\s+(\d+)(?::(\d+))?", dockerfile.read_text(), flags=re.MULTILINE)
    assert user, "the operator image must run as a numeric non-root user"
    uid, gid = user[-1]
    context = VALUES["operator"]["podSecurityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == int(uid) and context["runAsGroup"] == int(gid or uid)


@pytest.mark.parametrize("component", ["operator", "nodeAgent"])
def test_settings_values_are_every_other_key_of_the_components_tree(component: str) -> None:
    """<component>.settings holds exactly the tree's keys the chart has no dedicated value for, with the
    code's defaults, and its schema is the tree's (types, enums, no unknown keys): one list of fields."""
    settings = pytest.importorskip("gpulane_core.settings")
    chart_settings = pytest.importorskip("chart_settings")
    if component == "operator":
        root = pytest.importorskip("gpulane_operator.settings").OperatorSettings
        managed = chart_settings.OPERATOR_FROM_CHART
    else:
        root = pytest.importorskip("gpulane_agent.settings").AgentConfig
        managed = chart_settings.AGENT_FROM_CHART
    assert managed <= set(settings.keys(root))
    schema = dict(SCHEMA["properties"][component]["properties"]["settings"])
    schema.pop("description")
    assert schema == settings.json_schema(root, managed)
    assert VALUES[component]["settings"] == settings.file_defaults(root, managed)


def test_agent_loads_the_chart_settings_as_its_defaults(tmp_path: Path) -> None:
    agent_settings = pytest.importorskip("gpulane_agent.settings")
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", **VALUES["nodeAgent"]["settings"]}))
    assert agent_settings.load_config(str(path), {}, {"node_name": "n"}) == agent_settings.AgentConfig(node_name="n")
