"""Forward TCP from inside a node's network namespace to the apiserver on this machine's loopback.

Each real node lives in a network namespace of its own (nodehost.py). Its kubelet and its pods reach the
API at the `kubernetes` Service address (10.0.0.1:443), as in a real cluster, but there is no
kube-proxy: this process listens on that address inside the node's namespace and connects each client
to kube-apiserver on 127.0.0.1 in the root namespace. The listening socket is created after entering the
node's namespace (setns), the outgoing ones after returning to ours; a socket keeps the namespace it was
made in. Run as `python -m gpulane_dev.nsforward NETNS_PATH LISTEN_HOST:PORT TARGET_PORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

_CLONE_NEWNET = 0x40000000
_BUFFER = 1 << 16


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the body with this thread in the network namespace at `path`, then return to ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
        try:
            yield
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the root network namespace")
    finally:
        os.close(own)
        os.close(target)


def listener(netns: str, host: str, port: int) -> socket.socket:
    with in_netns(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    sock.listen(256)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(sock: socket.socket, target_port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            api_r, api_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, api_w), _pipe(api_r, client_w))

    server = await asyncio.start_server(handle, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"forwarding {sock.getsockname()} in the node's namespace to 127.0.0.1:{target_port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m gpulane_dev.nsforward NETNS_PATH LISTEN_HOST:PORT TARGET_PORT", file=sys.stderr)
        return 2
    host, _, port = args[1].rpartition(":")
    sock = listener(args[0], host, int(port))
    asyncio.run(serve(sock, int(args[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
