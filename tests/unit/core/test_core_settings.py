"""The one settings mechanism: precedence, the env scheme, conversions and the one error type."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gpulane_core.settings import (
    Problem,
    SettingsError,
    config_env,
    describe,
    env_name,
    keys,
    load,
    parse_assignments,
    settings_of,
)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Inner:
    depth: int = 1
    colours: frozenset[Colour] = frozenset({Colour.RED})

    def validate(self) -> list[str]:
        return [f"depth: must be at least 1, got {self.depth}"] if self.depth < 1 else []


@dataclass(frozen=True, slots=True)
class Section:
    ratio: float = 0.5
    names: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)


@dataclass(frozen=True, slots=True)
class Root:
    name: str = "x"
    enabled: bool = True
    colour: Colour = Colour.RED
    where: Path | None = None
    size: int = field(default=4, metadata={"help": "how many", "parse": lambda raw: int(str(raw)) * 2})
    section: Section = field(default_factory=Section)


def test_keys_and_env_scheme() -> None:
    assert list(keys(Root)) == [
        "name", "enabled", "colour", "where", "size",
        "section.ratio", "section.names", "section.inner.depth", "section.inner.colours",
    ]  # fmt: skip
    assert env_name("demo", "section.inner.depth") == "GPULANE_DEMO_SECTION_INNER_DEPTH"
    assert config_env("demo") == "GPULANE_DEMO_CONFIG"
    assert settings_of(Root)[4].help == "how many"


def test_flag_beats_env_beats_file_beats_default() -> None:
    text = "name: file\nenabled: false\nsection: {ratio: 0.25, inner: {depth: 3}}\n"
    env = {"GPULANE_DEMO_NAME": "env", "GPULANE_DEMO_SECTION_RATIO": "0.75", "GPULANE_DEMO_UNRELATED_PORT": "tcp://x"}
    s = load(Root, "demo", file_text=text, env=env, flags={"name": "flag", "enabled": None})
    assert (s.name, s.enabled, s.section.ratio, s.section.inner.depth) == ("flag", False, 0.75, 3)
    assert load(Root, "demo") == Root()


def test_conversions() -> None:
    env = {
        "GPULANE_DEMO_COLOUR": "BLUE", "GPULANE_DEMO_WHERE": "~/x", "GPULANE_DEMO_SIZE": "5",
        "GPULANE_DEMO_SECTION_NAMES": "a, b,,c", "GPULANE_DEMO_SECTION_INNER_COLOURS": "red,blue",
        "GPULANE_DEMO_ENABLED": "off",
    }  # fmt: skip
    s = load(Root, "demo", env=env)
    assert s.colour is Colour.BLUE and s.where == Path.home() / "x" and s.size == 10 and s.enabled is False
    assert s.section.names == ("a", "b", "c") and s.section.inner.colours == {Colour.RED, Colour.BLUE}
    assert load(Root, "demo", file_text="section: {names: [p, q]}").section.names == ("p", "q")


@pytest.mark.parametrize(
    ("text", "env", "flags", "message"),
    [
        ("colour: green", {}, {}, "colour (from file): must be one of red, blue, got 'green'"),
        ("", {"GPULANE_DEMO_ENABLED": "maybe"}, {}, "enabled (from env GPULANE_DEMO_ENABLED): expected true or false"),
        ("", {"GPULANE_DEMO_SECTION_RATIO": "half"}, {}, "section.ratio (from env GPULANE_DEMO_SECTION_RATIO): expected"),
        ("section: {inner: {depht: 2}}", {}, {}, "section.inner.depht (from file): unknown setting"),
        ("", {}, {"section.inner.depth": 0}, "section.inner.depth: must be at least 1, got 0"),
        ("", {}, {"nope": 1}, "nope (from flag): unknown setting"),
        ("section: {inner: {depth: 2.5}}", {}, {}, "section.inner.depth (from file): expected an integer"),
        ("- a list", {}, {}, "config file: expected a mapping"),
        ("name: [", {}, {}, "config file: not valid YAML"),
    ],
)
def test_every_bad_value_names_key_source_and_reason(
    text: str, env: dict[str, str], flags: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(Root, "demo", file_text=text, env=env, flags=flags)
    assert message in str(caught.value)
    assert all(isinstance(p, Problem) and p.key and p.reason for p in caught.value.problems)


def test_all_problems_are_reported_at_once() -> None:
    env = {"GPULANE_DEMO_ENABLED": "maybe", "GPULANE_DEMO_SECTION_RATIO": "half"}
    with pytest.raises(SettingsError) as caught:
        load(Root, "demo", env=env)
    assert [p.key for p in caught.value.problems] == ["enabled", "section.ratio"]


def test_aliases_are_read_but_the_scheme_name_wins() -> None:
    aliases = {"OLD_NAME": "name"}
    assert load(Root, "demo", env={"OLD_NAME": "old"}, aliases=aliases).name == "old"
    both = {"OLD_NAME": "old", "GPULANE_DEMO_NAME": "new"}
    assert load(Root, "demo", env=both, aliases=aliases).name == "new"


def test_set_assignments_and_help() -> None:
    assert parse_assignments(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(SettingsError, match=r"--set \(from flag\): expected KEY=VALUE"):
        parse_assignments(["novalue"])
    text = describe(Root, "demo")
    assert "section.inner.colours" in text and "GPULANE_DEMO_SECTION_INNER_COLOURS" in text and "how many" in text
