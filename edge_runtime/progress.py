"""A tiny progress bar for stderr: no tqdm on a Pi.

On a terminal it redraws one line (at most 10 times a second); when stderr is
a file or a pipe (CI logs, ``2> log``) it prints a plain line every 10% so the
log stays readable. Messages printed through ``write`` clear the bar first.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Count work done out of ``total`` and show it on ``stream``.

    Args:
        total: how many items there are.
        label: a word shown before the counts.
        stream: where to draw; default ``sys.stderr``.
        enabled: False turns every call into a no-op.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, enabled: bool = True):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = 0
        self._drawn = False

    def update(self, n: int = 1) -> None:
        """Mark ``n`` more items done and redraw if it is time to."""
        self.done += n
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._draw()
        else:
            decile = min(10, self.done * 10 // self.total)
            if decile > self._last_decile:
                self._last_decile = decile
                self.stream.write(f"{self.label}: {self.done}/{self.total} ({decile * 10}%)\n")
                self.stream.flush()

    def _line(self) -> str:
        frac = min(1.0, self.done / self.total)
        width = 24
        filled = int(frac * width)
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * filled + "." * (width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {rate:5.1f}/s eta {eta:4.0f}s"

    def _draw(self) -> None:
        self.stream.write("\r" + self._line() + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def write(self, message: str) -> None:
        """Print a line on the stream without mangling the bar."""
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(message.rstrip("\n") + "\n")
        self.stream.flush()
        if self.enabled and self.tty and self._drawn:
            self._draw()

    def close(self) -> None:
        """Finish the bar's line."""
        if self.enabled and self.tty and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
