"""Progress on stderr, for edge-infer and the benchmark scripts: a thin layer over tqdm.

On a terminal it is a tqdm bar (redrawn at most 10 times a second). When the
stream is a file or a pipe (CI logs, ``2> log``) tqdm's carriage-return
redraws would make the log unreadable, so it prints a plain line every 10%
instead (``classifying: 20/200 (10%)``). Messages printed through ``write``
clear the bar first and redraw it after.

tqdm is imported only when a bar is drawn on a terminal. Its import cost,
measured on the build machine (one run; reports/tqdm_import_cost.txt, written
by ``python -X importtime`` and ``ru_maxrss``): 36-44 ms (most of it
``importlib.metadata`` for tqdm's version) and +4.8 MB peak RSS on top of numpy.
Small next to a runtime (LiteRT/ONNX Runtime), and paid only when a bar shows.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    """Count work done out of ``total`` and show it on ``stream``.

    Args:
        total: how many items there are.
        label: a word shown before the counts.
        stream: where to draw; default ``sys.stderr``.
        enabled: False turns every call into a no-op (``write`` still prints).
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, enabled: bool = True):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self._last_decile = 0
        self._bar: Any = None
        if self.enabled and self.tty:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: benchmarks time this process
            self._bar = tqdm(total=self.total, desc=label.strip() or None, file=self.stream, mininterval=0.1,
                             leave=True, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        """Mark ``n`` more items done and redraw (terminal) or log a line (every 10%)."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        decile = min(10, self.done * 10 // self.total)
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(f"{self.label.strip()}: {self.done}/{self.total} ({decile * 10}%)\n")
            self.stream.flush()

    def write(self, message: str) -> None:
        """Print a line on the stream without mangling the bar."""
        if self._bar is not None:
            self._bar.write(message.rstrip("\n"), file=self.stream)
        else:
            self.stream.write(message.rstrip("\n") + "\n")
        self.stream.flush()

    def close(self, note: str = "") -> None:
        """Finish the bar's line (``note`` is appended to it on a terminal)."""
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
