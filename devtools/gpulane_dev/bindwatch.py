"""When each pod of a bench was first seen bound, from a pod watch that survives the apiserver closing it.

The apiserver closes a watch whose client reads too slowly (5,000 pods on a loaded 2-core machine: the
first bench run at that size saw 210 binds and then nothing). So events are parsed as plain JSON, not
into client models, and a closed stream is followed by a list (pods bound meanwhile are stamped at that
list: later than they were bound, never earlier) and a new watch from the list's resourceVersion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

Key = Callable[[dict[str, Any]], str | None]  # the pod's key in the bench (its job), or None to ignore it


class BindWatch:
    def __init__(self, core: client.CoreV1Api, namespace: str, want: int, key: Key, label_selector: str = "") -> None:
        self._core, self._namespace, self._want, self._key = core, namespace, want, key
        self._selector = label_selector
        self.bound: dict[str, float] = {}  # key -> monotonic time first seen bound
        self.uids: dict[str, set[str]] = {}  # key -> every pod uid seen (more than one: placed twice)
        self.restarts = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._stream = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"bind watch {namespace}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._stream.stop()  # type: ignore[no-untyped-call]

    def _seen(self, pod: dict[str, Any]) -> None:
        key = self._key(pod)
        if key is None:
            return
        self.uids.setdefault(key, set()).add(pod["metadata"]["uid"])
        if (pod.get("spec") or {}).get("nodeName") and key not in self.bound:
            self.bound[key] = time.monotonic()
            if len(self.bound) >= self._want:
                self.done.set()

    def _list(self) -> str:
        response: Any = self._core.list_namespaced_pod(self._namespace, label_selector=self._selector, _preload_content=False)
        body = json.loads(response.data)
        for pod in body.get("items") or ():
            self._seen(pod)
        return str(body["metadata"]["resourceVersion"])

    def _run(self) -> None:
        version = self._list()
        while not self._stop.is_set() and not self.done.is_set():
            try:
                for event in self._stream.stream(  # type: ignore[no-untyped-call]
                    self._core.list_namespaced_pod, self._namespace, label_selector=self._selector,
                    resource_version=version, timeout_seconds=600, deserialize=False,
                ):  # fmt: skip
                    if event.get("type") == "ERROR":
                        break
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event.get("type") != "BOOKMARK":
                        self._seen(obj)
                    if self.done.is_set() or self._stop.is_set():
                        return
            except (client.ApiException, OSError, ValueError):
                pass  # a closed or expired stream: list again below
            if self._stop.is_set() or self.done.is_set():
                return
            self.restarts += 1
            version = self._list()
