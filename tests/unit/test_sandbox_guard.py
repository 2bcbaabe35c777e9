"""The sandbox watchdog: a server outlives neither a normal stop nor a SIGKILLed drconsole.

A `sleep` stands in for the server here (what is tested is process handling, not a
database); the real servers are covered by the demo and drill tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from drconsole.sandbox import ServerProcess

from helpers import process_alive, process_gone_within

OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from drconsole.sandbox import ServerProcess
    server = ServerProcess("sleeper", ["sleep", "600"], Path(sys.argv[1]), lambda: True)
    server.start()
    print(server.pid, server._guard.pid, flush=True)
    time.sleep(600)
    """
)


def test_a_sigkilled_owner_takes_its_server_down(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    server_pid, guard_pid = map(int, owner.stdout.readline().split())
    assert process_alive(server_pid) and process_alive(guard_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    assert process_gone_within(server_pid, 30), "the guard must stop the server of a killed owner"
    assert process_gone_within(guard_pid, 30), "the guard exits once the server is stopped"


def test_a_normal_stop_releases_the_guard_without_a_trace(tmp_path: Path) -> None:
    server = ServerProcess("sleeper", ["sleep", "600"], tmp_path, lambda: True)
    server.start()
    assert server._guard is not None
    guard_pid = server._guard.pid
    server_pid = server.pid
    assert server_pid is not None
    server.stop()
    assert not process_alive(server_pid) and not process_alive(guard_pid)
    assert server._guard is None and server._guard_pipe is None
    server.stop()


def test_the_guard_leaves_when_its_server_exits_on_its_own(tmp_path: Path) -> None:
    server = ServerProcess("sleeper", ["sleep", "600"], tmp_path, lambda: True)
    server.start()
    assert server._guard is not None and server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    server.process.wait(10)  # type: ignore[union-attr]
    assert process_gone_within(server._guard.pid, 30), "a guard must not outlive its server"
    server.stop()


def test_dropping_a_sandbox_this_process_started_leaves_no_zombie_or_watchdog(
    tmp_path: Path,
) -> None:
    """drop_sandbox stops the server by pid; when the console itself started it, the
    server must be reaped and its watchdog released then, not when the console quits
    (a walk of the console found a <defunct> chroma until q)."""
    from drconsole.sandbox import stop_pid

    server = ServerProcess("sleeper", ["sleep", "600"], tmp_path, lambda: True)
    server.start()
    assert server._guard is not None and server.pid is not None
    guard_pid, server_pid = server._guard.pid, server.pid
    assert stop_pid(server_pid, tmp_path) is True
    assert not Path(f"/proc/{server_pid}").exists(), "reaped: not even a zombie is left"
    assert not Path(f"/proc/{guard_pid}").exists(), "the watchdog was released and reaped"
    assert stop_pid(server_pid, tmp_path) is False, "a second drop finds it gone"
