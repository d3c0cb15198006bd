"""How long kopf's start-up index wait takes as the objects listed meanwhile grow (a known limit).

kopf runs no handler until every indexed kind is listed. Each object gets a readiness toggle; when it is
indexed, its worker drops the toggle (waking every worker already waiting) and waits for all the others.
This replays exactly that with kopf's own ToggleSet: objects arrive one by one while one kind is still
listing, then that kind finishes. The time is what the operator's first cycle waits on top of the listing.
"""

from __future__ import annotations

import asyncio
import sys
import time

from kopf._cogs.aiokits import aiotoggles  # kopf's readiness primitive, as kopf's watcher uses it


async def _start(objects: int) -> float:
    toggles = aiotoggles.ToggleSet(all)
    listing = await toggles.make_toggle(name="a kind still listing")

    async def worker() -> None:
        own = await toggles.make_toggle(name="object")  # made by kopf's watcher for each new object
        await asyncio.sleep(0)
        await toggles.drop_toggle(own)  # indexed: wakes every waiting worker
        await toggles.wait_for(True)  # kopf's processing waits for the whole operator to be indexed

    began = time.perf_counter()
    workers = []
    for _ in range(objects):
        workers.append(asyncio.create_task(worker()))
        await asyncio.sleep(0)
    await toggles.drop_toggle(listing)
    await asyncio.gather(*workers)
    return time.perf_counter() - began


def run(quick: bool) -> str:
    sizes = (250, 500) if quick else (500, 1000, 2000)
    rows = [(n, asyncio.run(_start(n))) for n in sizes]
    first_n, first_s = rows[0]
    return "\n".join([
        "## kopf's start-up index wait (a known limit of the operator)",
        "",
        "kopf's own `ToggleSet`, driven as kopf's watcher and workers drive it: objects arrive one by one while",
        "one indexed kind is still listing. Seconds until every worker may run its handlers; growth against",
        f"the smallest size (quadratic would be (n/{first_n})^2). See docs/operator.md, Known limits.",
        "",
        "| objects listed | wait (s) | x smallest | (n/smallest)^2 |",
        "|---:|---:|---:|---:|",
        *[f"| {n:,} | {s:.2f} | {s / first_s:.1f}x | {(n / first_n) ** 2:.0f} |" for n, s in rows],
    ])  # fmt: skip


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
