"""Scheduler-framework status codes: every decision says who decided and why."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.Enum):
    SUCCESS = "Success"
    ERROR = "Error"
    UNSCHEDULABLE = "Unschedulable"  # may succeed later, e.g. when memory is freed
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"  # larger than any GPU, no such GPU type
    WAIT = "Wait"
    SKIP = "Skip"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def message(self) -> str:
        return "; ".join(self.reasons)

    @staticmethod
    def success(plugin: str = "") -> Status:
        return Status(Code.SUCCESS, (), plugin)

    @staticmethod
    def unschedulable(reason: str, plugin: str, *, resolvable: bool = True) -> Status:
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return Status(code, (reason,), plugin)
