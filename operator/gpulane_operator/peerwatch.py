"""Log what a peered replica waits for (the reason is decided by gpulane_operator.peering)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from gpulane_operator.k8s.api import ApiError, KubeApi
from gpulane_operator.peering import PeeringTarget, Waiting, waiting_for

log = logging.getLogger(__name__)

FIRST_CHECK_S = 1.0  # soon after start: a paused replica must say why within seconds
CHECK_EVERY_S = 10.0
REPEAT_EVERY_S = 30.0  # an unchanged reason is logged again this often, so a stuck replica stays visible


async def reasons(api: KubeApi, targets: Sequence[PeeringTarget], now_s: float) -> list[Waiting]:
    out: list[Waiting] = []
    for target in targets:
        body: dict[str, Any] | None
        error: str | None = None
        try:
            body = await api.read_peering(target.name, target.namespace)
        except ApiError as exc:
            if exc.status != 404:
                out.append(Waiting(f"unreadable {target.describe()}", f"cannot read {target.describe()}: {exc}"))
                continue
            body, error = None, exc.message
        reason = waiting_for(target, body, error, now_s)
        if reason is not None:
            out.append(reason)
    return out


async def watch(api: KubeApi, targets: Sequence[PeeringTarget], clock: Callable[[], float]) -> None:
    """Every CHECK_EVERY_S: log why this replica is paused (a fault: WARNING, every REPEAT_EVERY_S; standing
    by behind an active peer: INFO, once), and once when nothing blocks it any more."""
    await asyncio.sleep(FIRST_CHECK_S)
    logged: dict[str, float] = {}
    waited = False
    while True:
        now = clock()
        found = await reasons(api, targets, now)
        for reason in found:
            if reason.expected and reason.key not in logged:
                log.info("not scheduling: %s", reason.message)
                logged[reason.key] = now
            elif not reason.expected and now - logged.get(reason.key, -REPEAT_EVERY_S) >= REPEAT_EVERY_S:
                log.warning("not scheduling: %s", reason.message)
                logged[reason.key] = now
        if waited and not found:
            log.info("peering: nothing blocks this replica any more; it schedules")
        waited = bool(found)
        keys = {r.key for r in found}
        logged = {k: t for k, t in logged.items() if k in keys}
        await asyncio.sleep(CHECK_EVERY_S)
