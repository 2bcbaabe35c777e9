"""The real program in a real terminal: a tmux session a test types into and reads."""

from __future__ import annotations

import subprocess
import time


class TmuxSession:
    """A detached tmux session running ``command`` on a ``width`` x ``height`` screen."""

    def __init__(self, name: str, command: str, width: int = 110, height: int = 32) -> None:
        self.name = name[:60]
        size = ["-x", str(width), "-y", str(height)]
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, *size, command], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def wait_for(self, text: str, seconds: float) -> str:
        """The screen once it shows ``text``; fails with the screen after ``seconds``."""
        deadline = time.monotonic() + seconds
        screen = self.screen()
        while text not in screen and time.monotonic() < deadline:
            time.sleep(0.2)
            screen = self.screen()
        assert text in screen, f"{text!r} never appeared; the screen:\n{screen}"
        return screen

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def closed_within(self, seconds: float) -> bool:
        """Whether the program ended (and with it the session) within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            alive = subprocess.run(
                ["tmux", "has-session", "-t", self.name], capture_output=True, check=False
            )
            if alive.returncode != 0:
                return True
            time.sleep(0.2)
        return False

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)
