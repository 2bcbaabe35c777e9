"""The watchdog beside every sandbox server: it stops the server when drconsole dies.

A process killed with SIGKILL (or by the OOM killer) runs no exit handler, so the server
it started would run on, holding ports and disk. drconsole starts this small process with
the read end of a pipe whose write end only drconsole holds. The kernel closes that end
when drconsole dies, however it dies; the guard then reads end-of-file and stops the
server's process group (its stop signal, SIGTERM unless the server says otherwise, then
SIGKILL). A normal stop writes one byte first, which tells the guard to leave the server
alone and exit. Standard library only, so it starts in tens of milliseconds.

Run as ``python -m drconsole.sandbox_guard SERVER_PID PIPE_FD [STOP_SIGNAL]``.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

STOP_GRACE_S = 5.0
POLL_S = 1.0
RELEASE = b"q"


def guard(server_pid: int, pipe_fd: int, stop_signal: int = signal.SIGTERM) -> None:
    """Wait until drconsole dies (stop the server) or releases us (leave it)."""
    while True:
        readable, _, _ = select.select([pipe_fd], [], [], POLL_S)
        if readable:
            if os.read(pipe_fd, 1) == RELEASE:
                return
            break
        if not _alive(server_pid):
            return
    _stop_group(server_pid, stop_signal)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pid: int, stop_signal: int) -> None:
    for sig in (stop_signal, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guard(int(argv[1]), int(argv[2]), *(int(value) for value in argv[3:4]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
