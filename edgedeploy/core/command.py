"""One command-line convention for every entry point.

Every console script and benchmark script is ``main(argv=None) -> int`` built
on :func:`run_command`::

    def main(argv=None) -> int:
        return run_command("edge-infer", build_parser, run, argv)

It maps outcomes to exit codes, the same everywhere:

====  ==========================================================
0     success
1     a runtime failure (``RuntimeFailure``; a converter crashed, some inputs failed)
2     a usage error: a bad flag, path, model or image (``EdgeDeployError``)
3     a parity gate rejected a file (``GateError``)
130   interrupted (Ctrl-C or SIGTERM)
====  ==========================================================

An error prints ONE line, ``PROG: error: <message naming the bad value>``, on
stderr; ``--debug`` re-raises it so the traceback shows. argparse's own
mistakes go through :class:`ArgumentParser`, which raises ``UsageError``
instead of printing a usage block and exiting by itself.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Callable, Sequence

from .errors import EdgeDeployError

__all__ = ["ArgumentParser", "UsageError", "RuntimeFailure", "run_command", "run_argv", "EXIT_OK", "EXIT_RUNTIME",
           "EXIT_USAGE", "EXIT_GATE", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(EdgeDeployError):
    """A bad flag or flag combination (exit 2)."""

    exit_code = EXIT_USAGE


class RuntimeFailure(EdgeDeployError):
    """The work itself failed although the request was valid (exit 1)."""

    exit_code = EXIT_RUNTIME


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (one line, exit 2) instead of exiting, and takes flags anywhere.

    ``parse_args`` parses intermixed (``parse_intermixed_args``): options may sit before, between
    and after the positional arguments (``edge-infer MODEL --top-k 1 IMG``). A parser that hands
    the rest of the line on (``argparse.REMAINDER``) sets ``intermixed = False``.
    """

    intermixed = True

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        if self.intermixed:
            return self.parse_intermixed_args(args, namespace)
        return super().parse_args(args, namespace)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def _on_sigterm(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C, so atomic writes remove their temporary files.
    raise KeyboardInterrupt


def _enable_stop_signals() -> tuple[Any, dict[int, Any]]:
    """Let SIGINT and SIGTERM reach this command whatever the parent left (main thread only).

    A blocked signal mask survives exec, so a parent that blocks SIGTERM (a
    thread of a supervisor, a job runner) would make it wait forever; an
    ignored SIGINT (``cmd &`` in a script) would make Ctrl-C do nothing. So both
    are unblocked, and an ignored one gets Python's default back (SIGINT: raise
    KeyboardInterrupt; SIGTERM: ``_on_sigterm`` replaces it next). Returns the
    old mask and the replaced dispositions, for ``_restore_stop_signals``.
    """
    if threading.current_thread() is not threading.main_thread():
        return None, {}
    stop = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)
    ignored = {sig: signal.SIG_IGN for sig in stop if signal.getsignal(sig) == signal.SIG_IGN}
    for sig in ignored:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    return mask, ignored


def _restore_stop_signals(mask: Any, ignored: dict[int, Any]) -> None:
    """Undo ``_enable_stop_signals`` (for an in-process caller)."""
    for sig, old in ignored.items():
        signal.signal(sig, old)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def run_command(prog: str, build_parser: Callable[[], argparse.ArgumentParser],
                body: Callable[[argparse.Namespace], int | None], argv: Sequence[str] | None = None,
                stderr: Any = None) -> int:
    """Parse ``argv`` with ``build_parser()`` and run ``body(args)``.

    Args:
        prog: the program name printed before every error line.
        build_parser: returns the parser (kept import-light so ``--help`` is instant).
        body: does the work; returns an exit code (None means 0).
        argv: arguments without the program name; default ``sys.argv[1:]``.
        stderr: where error lines go (default ``sys.stderr``).

    Returns:
        The exit code: 0, 1, 2, 3 or 130 (see the module docstring).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    err = stderr or sys.stderr
    previous = None
    debug_env = os.environ.get("EDGEDEPLOY_DEBUG")  # --debug sets it for this call only (subprocesses inherit it)
    mask, ignored = _enable_stop_signals()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        try:
            args = build_parser().parse_args(args_list)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        if getattr(args, "debug", False):
            os.environ["EDGEDEPLOY_DEBUG"] = "1"
        code = body(args)
        return EXIT_OK if code is None else int(code)
    except EdgeDeployError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=err, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=err, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cmd | head`: the reader left, that is fine
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    finally:
        if debug_env is None:
            os.environ.pop("EDGEDEPLOY_DEBUG", None)
        else:
            os.environ["EDGEDEPLOY_DEBUG"] = debug_env
        if previous is not None:
            try:
                signal.signal(signal.SIGTERM, previous)
            except ValueError:
                pass
        _restore_stop_signals(mask, ignored)


class _ArgvOnly:
    """A 'parser' that hands the raw arguments on, for bodies that parse them themselves."""

    def parse_args(self, args: Sequence[str]) -> argparse.Namespace:
        return argparse.Namespace(argv=list(args), debug="--debug" in args)


def run_argv(prog: str, body: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
             stderr: Any = None) -> int:
    """:func:`run_command` for a body that takes the argument list and parses it itself.

    The body's parser should be :class:`ArgumentParser` (a mistake is then one
    ``UsageError`` line, exit 2); its ``--help`` exits 0 as usual.
    """

    def run(ns: argparse.Namespace) -> int | None:
        try:
            return body(ns.argv)
        except SystemExit as exc:  # --help / --version from the body's own parser
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE

    return run_command(prog, _ArgvOnly, run, argv, stderr)
