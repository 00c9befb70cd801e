"""A command in a pseudo-terminal, driven as a person would: type, press Ctrl-C, read.

The child gets the pty as its controlling terminal, so Ctrl-C (0x03) reaches it as SIGINT
from the terminal's line discipline, exactly as at a shell.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time
from pathlib import Path

WAIT = 60  # seconds before a missing line fails the test: a hang guard, not a speed check
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[=>]")


def take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=take_terminal,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.screen = ""  # everything shown so far, escapes removed, \r\n as \n
        self.seen = 0  # how far expect() has read

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def line(self, text: str) -> None:
        self.type(text + "\r")

    def expect(self, text: str | re.Pattern[str]) -> str | re.Match[str]:
        """Wait for `text` after what was already matched; return it (or the match)."""
        deadline = time.monotonic() + WAIT
        while True:
            rest = self.screen[self.seen :]
            if isinstance(text, re.Pattern):
                if found := text.search(rest):
                    self.seen += found.end()
                    return found
            elif (at := rest.find(text)) >= 0:
                self.seen += at + len(text)
                return text
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.read(remaining):
                raise AssertionError(f"never saw {text!r}; the terminal shows:\n{self.screen}")

    def read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child is gone and its side of the pty closed
            return False
        if not data:
            return False
        self.screen += ESCAPES.sub(b"", data).decode(errors="replace").replace("\r\n", "\n")
        return True

    def finish(self) -> int:
        """Read what is left, wait for the exit, and return its status."""
        while self.read(WAIT):
            pass
        status = self.process.wait(WAIT)
        os.close(self.master)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
