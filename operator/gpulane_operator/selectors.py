"""A DRA job's device selectors (CEL, as in a ResourceClaim) turned into the GPUs it may use.

The operator places DRA jobs itself, so it must honour the selectors its claims carry: each one is
evaluated with the CEL library cel-python against every GPU's attributes as the node agent publishes
them in the ResourceSlice (device.driver, and uuid, model, index under the domain gpu.gpulane.dev).
The result is a set of GPU UUIDs (``Job.allowed_gpus``): the core filters on that, never on CEL.
Mistakes are reported before anything is created, naming the selector and what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError
from gpulane_core.model import Gpu

DOMAIN = "gpu.gpulane.dev"
DRIVER = DOMAIN
ATTRIBUTES = ("uuid", "model", "index")  # what gpulane_agent.dra.slices publishes for each device
DEVICE_FIELDS = ("driver", "attributes")
KNOWN = f'device.driver, device.attributes["{DOMAIN}"].' + ", .".join(ATTRIBUTES)
_ATTRIBUTE = re.compile(
    r'device\s*\.\s*attributes\s*\[\s*"([^"]*)"\s*\]\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*"([^"]*)"\s*\])?'
)
_FIELD = re.compile(r"device\s*\.\s*([A-Za-z_]\w*)")


class SelectorError(ValueError):
    """A selector that is not valid CEL, names something a gpulane device does not have, or fails."""


@dataclass(frozen=True, slots=True)
class Selectors:
    """Compiled selectors of one job (the expressions, in order, with their programs)."""

    expressions: tuple[str, ...]
    programs: tuple[Any, ...]  # celpy Runner objects (untyped library)

    def eligible(self, gpus: Iterable[Gpu]) -> frozenset[str]:
        """The UUIDs of the GPUs every selector accepts; SelectorError when one cannot be evaluated."""
        return frozenset(gpu.uuid for gpu in gpus if self.accepts(gpu))

    def accepts(self, gpu: Gpu) -> bool:
        activation = {"device": json_to_cel(device(gpu))}
        for i, (text, program) in enumerate(zip(self.expressions, self.programs, strict=True)):
            try:
                value = program.evaluate(activation)
            except CELEvalError as exc:
                raise SelectorError(f"{_where(i, text)}: cannot be evaluated: {exc.args[0]}") from None
            if not isinstance(value, BoolType):
                raise SelectorError(f"{_where(i, text)}: must be a boolean expression, got {type(value).__name__}")
            if not value:
                return False
        return True


def device(gpu: Gpu) -> dict[str, Any]:
    """The CEL ``device`` variable for one GPU, with the slice's attribute names."""
    return {"driver": DRIVER, "attributes": {DOMAIN: {"uuid": gpu.uuid, "model": gpu.model, "index": gpu.index}}}


def _where(i: int, text: str) -> str:
    return f"spec.deviceSelectors[{i}] {text!r}"


def unknown_names(text: str) -> list[str]:
    """Attributes and device fields the expression uses that a gpulane device does not have."""
    bad = [f"device.{f}" for f in _FIELD.findall(text) if f not in DEVICE_FIELDS]
    for domain, dotted, indexed in _ATTRIBUTE.findall(text):
        name = dotted or indexed
        if domain != DOMAIN:
            bad.append(f'device.attributes["{domain}"]')
        elif name and name not in ATTRIBUTES:
            bad.append(f'device.attributes["{domain}"].{name}')
    return bad


def compile_selectors(expressions: Sequence[str]) -> Selectors:
    """Compile and check each expression; SelectorError naming the first bad one and why."""
    env = celpy.Environment()
    programs = []
    for i, text in enumerate(expressions):
        try:
            ast = env.compile(text)
        except CELParseError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
            raise SelectorError(f"{_where(i, text)}: not a valid CEL expression ({first})") from None
        bad = unknown_names(text)
        if bad:
            raise SelectorError(
                f"{_where(i, text)}: a {DRIVER} device has no {', '.join(bad)} (known: {KNOWN})"
            )
        programs.append(env.program(ast))
    return Selectors(tuple(expressions), tuple(programs))


@dataclass(frozen=True, slots=True)
class SelectorCache:
    """Compiled selectors and per-GPU verdicts, kept by the runtime: a cycle re-checks every pending DRA
    job, and compiling (about a millisecond) or evaluating (half of one) again would change nothing."""

    compiled: dict[tuple[str, ...], Selectors | SelectorError] = field(default_factory=dict)
    verdicts: dict[tuple[tuple[str, ...], Gpu], bool | SelectorError] = field(default_factory=dict)

    def eligible(self, expressions: tuple[str, ...], gpus: Iterable[Gpu]) -> frozenset[str]:
        """As :meth:`Selectors.eligible`; SelectorError (remembered) for a bad selector."""
        got = self.compiled.get(expressions)
        if got is None:
            try:
                got = compile_selectors(expressions)
            except SelectorError as exc:
                got = exc
            self.compiled[expressions] = got
        if isinstance(got, SelectorError):
            raise got
        out = set()
        for gpu in gpus:
            verdict = self.verdicts.get((expressions, gpu))
            if verdict is None:
                try:
                    verdict = got.accepts(gpu)
                except SelectorError as exc:
                    verdict = exc
                self.verdicts[(expressions, gpu)] = verdict
            if isinstance(verdict, SelectorError):
                raise verdict
            if verdict:
                out.add(gpu.uuid)
        return frozenset(out)
