"""One settings mechanism for every component: a frozen dataclass tree read flag > environment > file.

A component describes its settings as nested frozen dataclasses (a field whose type is a dataclass
is a *section*, every other field is a *setting*). This module turns that tree into

* dotted keys (``scheduling.ordering``), the names the file, the flags and the errors use;
* one environment variable per key, ``GPULANE_<COMPONENT>_<SECTION>_<FIELD>``
  (``GPULANE_OPERATOR_SCHEDULING_ORDERING``); variables with the prefix that name no key are
  ignored, because Kubernetes injects ``<SERVICE>_PORT``-style variables into pods;
* one loader: defaults < file (YAML of the same nesting) < environment < flags, each value converted
  from the field's type (bool, int, float, str, Path, Enum, ``X | None``, ``tuple[X, ...]``,
  ``frozenset[X]``, or a ``parse`` function in the field's metadata), then every ``validate()`` of
  the tree run with its problems prefixed by the section's key;
* one error type, :class:`SettingsError`, listing every problem with its key, source and reason.

Pure: it reads no file and no process environment; callers pass the file's text and ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
ENV_ROOT = "GPULANE"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Problem:
    key: str  # dotted key, or "config file" / "flag" for problems that are not about one key
    reason: str
    source: str = ""  # "file", "flag", "env GPULANE_...", or "" after merging (validation)

    def __str__(self) -> str:
        where = f"{self.key} (from {self.source})" if self.source else self.key
        return f"{where}: {self.reason}"


class SettingsError(ValueError):
    """Settings that cannot be used; ``problems`` names each bad key, its source and the reason."""

    def __init__(self, *problems: Problem) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Setting:
    """One leaf of a settings tree."""

    key: str
    annotation: Any
    default: Any
    help: str = ""
    parse: Callable[[Any], Any] | None = None


def env_prefix(component: str) -> str:
    return f"{ENV_ROOT}_{component.upper()}_"


def env_name(component: str, key: str) -> str:
    """``("operator", "scheduling.ordering")`` -> ``GPULANE_OPERATOR_SCHEDULING_ORDERING``."""
    return env_prefix(component) + key.replace(".", "_").upper()


def config_env(component: str) -> str:
    """The variable naming a component's settings file: ``GPULANE_<COMPONENT>_CONFIG``."""
    return env_prefix(component) + "CONFIG"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def settings_of(root: type[Any], prefix: str = "") -> tuple[Setting, ...]:
    """Every setting of the tree under ``root``, depth first in field order."""
    hints = typing.get_type_hints(root)
    out: list[Setting] = []
    for f in dataclasses.fields(root):
        if not f.init:
            continue
        annotation = hints[f.name]
        key = f"{prefix}{f.name}"
        if _is_section(annotation):
            out += settings_of(annotation, key + ".")
        else:
            meta = f.metadata
            out.append(Setting(key, annotation, _default(f), meta.get("help", ""), meta.get("parse")))
    return tuple(out)


def keys(root: type[Any]) -> dict[str, Any]:
    """Every dotted key with its default (the reference tables in docs/)."""
    return {s.key: s.default for s in settings_of(root)}


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, float):
        if raw != int(raw):
            raise ValueError(f"expected an integer, got {raw!r}")
        return int(raw)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        return float(str(raw).strip()) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {raw!r}") from None


def _items(raw: Any) -> list[Any]:
    if isinstance(raw, list | tuple | set | frozenset):
        return list(raw)
    return [item for item in (part.strip() for part in str(raw).split(",")) if item]


def convert(annotation: Any, raw: Any) -> Any:
    """``raw`` (text from env or flags, or a YAML value) as a value of ``annotation``; ValueError if not."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return None if raw is None or raw == "" else convert(inner, raw)
    if origin is tuple:
        return tuple(convert(args[0], item) for item in _items(raw))
    if origin is frozenset:
        return frozenset(convert(args[0], item) for item in _items(raw))
    if annotation is bool:
        return _bool(raw)
    if annotation is int:
        return _int(raw)
    if annotation is float:
        return _float(raw)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        for member in annotation:
            if str(member.value).lower() == str(raw).strip().lower():
                return member
        allowed = ", ".join(str(m.value) for m in annotation)
        raise ValueError(f"must be one of {allowed}, got {raw!r}")
    if isinstance(raw, Mapping | list):
        raise ValueError(f"expected a single value, got a {type(raw).__name__}")
    if annotation is Path:
        if not isinstance(raw, str | Path) or not str(raw):
            raise ValueError(f"expected a path, got {raw!r}")
        return Path(raw).expanduser()
    if annotation is str:
        return str(raw)
    raise TypeError(f"settings: no conversion for {annotation!r}")


def parse_file(text: str | None, source: str = "config file") -> Mapping[str, Any]:
    """A settings file's YAML text as a mapping (empty text or file: no settings)."""
    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(Problem(source, f"not valid YAML: {exc}")) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsError(Problem(source, f"expected a mapping at the top level, got {type(data).__name__}"))
    return data


def _flatten(data: Mapping[str, Any], known: Mapping[str, Setting], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for name, value in data.items():
        key = f"{prefix}{str(name).replace('-', '_')}"  # files may spell keys with dashes, as flags do
        if key not in known and isinstance(value, Mapping):
            yield from _flatten(value, known, key + ".")
        else:
            yield key, value


def parse_assignments(items: Sequence[str] | None) -> dict[str, str]:
    """``--set key=value`` arguments as a mapping; SettingsError for an item without ``=``."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(Problem("--set", f"expected KEY=VALUE, got {item!r}", "flag"))
        out[key.strip()] = value
    return out


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if _is_section(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, key + ".")
        elif key in values:
            kwargs[f.name] = values[key]
    return cls(**kwargs)


def validate_tree(node: Any, prefix: str = "") -> list[Problem]:
    """Every section's ``validate()`` problems (``"field: reason"``), keyed from the root."""
    problems: list[Problem] = []
    for f in dataclasses.fields(node):
        child = getattr(node, f.name)
        if dataclasses.is_dataclass(child) and not isinstance(child, type):
            problems += validate_tree(child, f"{prefix}{f.name}.")
    check = getattr(node, "validate", None)
    for text in check() if callable(check) else ():
        key, sep, reason = str(text).partition(": ")
        problem = Problem(prefix + key, reason) if sep else Problem(prefix.rstrip(".") or "settings", text)
        if problem not in problems:  # a section may repeat its children's problems in its own validate()
            problems.append(problem)
    return problems


def _unknown(key: str, known: Mapping[str, Setting]) -> str:
    """The reason for an unknown key, naming what its section does have."""
    parent = key.rpartition(".")[0]
    siblings = [k[len(parent) + 1 :] if parent else k for k in known if k.rpartition(".")[0] == parent]
    if siblings and (not parent or any(k.startswith(parent + ".") for k in known)):
        return f"unknown setting (known in {parent or 'the top level'}: {', '.join(siblings)})"
    sections = sorted({k.split(".")[0] for k in known})
    return f"unknown setting (top-level names: {', '.join(sections)})"


def load(
    root: type[T],
    component: str,
    *,
    file_text: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    aliases: Mapping[str, str] | None = None,
    file_name: str = "file",
) -> T:
    """Defaults < file < environment < flags, converted and validated; SettingsError lists every problem.

    ``flags`` maps dotted keys to values (``None``: not given). ``aliases`` maps further variable
    names (deprecated or conventional ones) to keys; the scheme's own variable wins over an alias.
    """
    known = {s.key: s for s in settings_of(root)}
    env = env or {}
    layers: list[tuple[str, str, Any]] = []  # (key, source, raw) in rising precedence
    problems: list[Problem] = []
    for key, raw in _flatten(parse_file(file_text, "config file" if file_name == "file" else file_name), known):
        if key in known:
            layers.append((key, file_name, raw))
        else:
            problems.append(Problem(key, _unknown(key, known), file_name))
    for name, key in (aliases or {}).items():
        if name in env and env_name(component, key) not in env:
            layers.append((key, f"env {name}", env[name]))
    for key in known:
        name = env_name(component, key)
        if name in env:
            layers.append((key, f"env {name}", env[name]))
    for key, raw in (flags or {}).items():
        if raw is None:
            continue
        if key in known:
            layers.append((key, "flag", raw))
        else:
            problems.append(Problem(key, _unknown(key, known), "flag"))
    values: dict[str, Any] = {}
    for key, source, raw in layers:
        setting = known[key]
        try:
            values[key] = setting.parse(raw) if setting.parse else convert(setting.annotation, raw)
        except ValueError as exc:
            problems.append(Problem(key, str(exc), source))
    if problems:
        raise SettingsError(*problems)
    tree = _build(root, values, "")
    problems = validate_tree(tree)
    if problems:
        raise SettingsError(*problems)
    return typing.cast(T, tree)


def describe(root: type[Any], component: str, *, set_flag: bool = True) -> str:
    """The reference of every setting, for ``--help``: key, environment variable, default."""
    rows = [(s.key, env_name(component, s.key), _shown(s.default), s.help) for s in settings_of(root)]
    width = max(len(r[0]) for r in rows)
    how = "any key: --set KEY=VALUE; " if set_flag else ""
    lines = [f"settings (flag > env > file; {how}file: --config or ${config_env(component)}):"]
    for key, env, default, text in rows:
        tail = f"  {text}" if text else ""
        lines.append(f"  {key:<{width}}  {env}  (default {default}){tail}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple | frozenset):
        items = sorted(str(v.value if isinstance(v, enum.Enum) else v) for v in value)
        return ",".join(items) or "empty"
    if value == "":
        return "empty"
    return str(value)


def json_schema(root: type[Any], exclude: Iterable[str] = (), prefix: str = "") -> dict[str, Any]:
    """The JSON schema of the tree's file form (the chart's values.schema.json), without ``exclude``d keys."""
    skip = set(exclude)
    hints = typing.get_type_hints(root)
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(root):
        key = f"{prefix}{f.name}"
        if key in skip or not f.init:
            continue
        if _is_section(hints[f.name]):
            sub = json_schema(hints[f.name], skip, key + ".")
            if sub["properties"]:
                properties[f.name] = sub
        else:
            properties[f.name] = _leaf_schema(hints[f.name]) | ({"description": f.metadata["help"]} if "help" in f.metadata else {})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _leaf_schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = _leaf_schema(next(a for a in args if a is not type(None)))
        return {**inner, "type": [inner["type"], "null"]}
    if origin in (tuple, frozenset):
        return {"type": "array", "items": _leaf_schema(args[0]), "uniqueItems": origin is frozenset}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"type": "string", "enum": [str(m.value) for m in annotation]}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}
    return {"type": simple[annotation]}


def file_defaults(root: type[Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The tree's defaults in file form (nested, enums as values, sets as sorted lists), without ``exclude``."""
    out: dict[str, Any] = {}
    for s in settings_of(root):
        if s.key in set(exclude):
            continue
        node = out
        *sections, name = s.key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = _file_value(s.default)
    return out


def _file_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(_file_value(v) for v in value)
    if isinstance(value, tuple):
        return [_file_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
