"""Run a server inside a loopback-only network namespace of its own, reached through
relays: Milvus binds every interface (and a dozen fixed ports), so it runs where the
only interface is its own ``lo``, and nothing outside can reach it but what we forward.

The launcher (this module, run as ``python -m drconsole.engines.milvus.netns``) binds
its host-side listeners first, then moves itself into a new network namespace, brings
``lo`` up there, opens the namespace-side listeners and starts the command, which
inherits the namespace. A namespace is a property of each thread on Linux, so a
connection accepted on one side is relayed by a thread that enters the other side's
namespace (``setns``) before it opens its outgoing socket; sockets keep the namespace
they were made in. Two kinds of relay:

- ``--forward HOST_PORT=INNER_PORT``: 127.0.0.1:HOST_PORT outside to 127.0.0.1:INNER_PORT
  inside (clients reaching the server);
- ``--reverse INNER_PORT=HOST:PORT``: 127.0.0.1:INNER_PORT inside to HOST:PORT outside
  (the server reaching its object storage).

The launcher exits with the command's code, once the command has exited; a stop signal
is passed on to the command (SIGINT), which is killed if it has not stopped within
``--grace`` seconds (Milvus's own launcher gives it one). Standard library only;
it needs CAP_SYS_ADMIN (root), which the caller checks first.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CHUNK = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)


def _enter(namespace_fd: int) -> None:
    """Move the calling thread into the network namespace ``namespace_fd`` refers to."""
    if _libc.setns(namespace_fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _new_namespace() -> None:
    if _libc.unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare: {os.strerror(error)}")


def _loopback_up() -> None:
    """``ip link set lo up``, without needing the ``ip`` program."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request + b"\0" * 22)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes; then close both."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _relay(accepted: socket.socket, namespace_fd: int, address: tuple[str, int]) -> None:
    """Connect to ``address`` from inside ``namespace_fd`` and relay both ways."""
    _enter(namespace_fd)
    try:
        outgoing = socket.create_connection(address, timeout=10)
    except OSError:
        accepted.close()
        return
    outgoing.settimeout(None)
    for sock in (accepted, outgoing):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(outgoing, accepted), daemon=True)
    back.start()
    _pump(accepted, outgoing)
    back.join()
    accepted.close()
    outgoing.close()


def _serve(listener: socket.socket, namespace_fd: int, address: tuple[str, int]) -> None:
    while True:
        try:
            accepted, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(accepted, namespace_fd, address), daemon=True).start()


def _pair(text: str) -> tuple[int, str, int]:
    """``PORT=PORT`` or ``PORT=HOST:PORT`` as (listen port, host, port)."""
    listen, _, to = text.partition("=")
    host, _, port = to.rpartition(":")
    return int(listen), host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drconsole.engines.milvus.netns")
    parser.add_argument("--forward", action="append", default=[], type=_pair)
    parser.add_argument("--reverse", action="append", default=[], type=_pair)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--grace", type=float, default=4.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)

    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    forwards = [(_listener(listen), (host, port)) for listen, host, port in args.forward]
    _new_namespace()
    inner_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    _loopback_up()
    reverses = [(_listener(listen), (host, port)) for listen, host, port in args.reverse]
    for listener, address in forwards:
        threading.Thread(target=_serve, args=(listener, inner_fd, address), daemon=True).start()
    for listener, address in reverses:
        threading.Thread(target=_serve, args=(listener, host_fd, address), daemon=True).start()

    stopping: list[float] = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(time.monotonic()))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in args.env)
    child = subprocess.Popen(args.command, env=env)
    signalled = False
    while True:
        try:
            code = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if stopping and not signalled:
            child.send_signal(signal.SIGINT)
            signalled = True
        if stopping and time.monotonic() - stopping[0] > args.grace:
            child.kill()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
