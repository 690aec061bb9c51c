"""edge-bench: the benchmark scripts as one console script, for a device that has only the wheel.

    edge-bench latency MODEL... --threads 1,4 --json lat.json
    edge-bench compare models/ --dataset digits --out report/
    edge-bench list

``edge-bench NAME ARGS...`` runs ``benchmarks/NAME.py``'s ``main(ARGS)`` from the
installed package (a dash in NAME stands for an underscore), exactly as
``python benchmarks/NAME.py ARGS...`` does from a checkout. Every module in this
package with a ``main`` and no leading underscore is a command: a new script is
one new file. A script that needs more than the ``edge`` extra says so with
``REQUIRES = Requires("train", "tensorflow")`` (``_common.Requires``): ``edge-bench list``
lists it only where those modules are installed, and names the extra for the others
in one line each on stderr; ``edge-bench NAME`` refuses it there with that line (exit 2).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Sequence

from edgedeploy.core.command import ArgumentParser, UsageError, run_command

PROG = "edge-bench"
HERE = Path(__file__).resolve().parent
NOT_COMMANDS = {"cli"}


def _has_main(name: str) -> bool:
    """A script defines ``main`` (read from its source: listing the commands imports none of them)."""
    try:
        return "\ndef main(" in (HERE / f"{name}.py").read_text(encoding="utf-8")
    except OSError:
        return False


def command_names() -> list[str]:
    """The benchmark scripts in this package (modules with a ``main``), as edge-bench commands (underscores as dashes)."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(HERE)])
                  if not m.name.startswith("_") and m.name not in NOT_COMMANDS and not m.ispkg and _has_main(m.name))


def requirement_message(name: str) -> str | None:
    """None when command ``name`` can run on this install, else one line naming the extra it needs."""
    try:
        module = importlib.import_module(f"{__package__}.{name.replace('-', '_')}")
    except ImportError as exc:  # a script whose own imports are missing here
        return f"{name} cannot run on this install: {exc}"
    requires = getattr(module, "REQUIRES", None)
    return requires.message(name) if requires is not None else None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run an edgedeploy benchmark script from the installed package.",
                       epilog="commands: " + ", ".join(command_names()) + ". `edge-bench NAME --help` shows a "
                       "command's own flags.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", metavar="NAME", help="a benchmark script (`edge-bench list` lists them)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    p.intermixed = False  # everything after NAME is the script's own
    return p


def run(args: argparse.Namespace) -> int:
    names = command_names()
    if args.command == "list":  # what runs here; one line on stderr for each script that needs another extra
        for name in names:
            msg = requirement_message(name)
            if msg is None:
                print(name)
            else:
                print(f"{PROG}: not on this install: {msg}", file=sys.stderr)
        return 0
    if args.command not in names:
        raise UsageError(f"Received command {args.command!r}, expected one of: {', '.join(names)}")
    msg = requirement_message(args.command)
    if msg is not None and not any(a in ("-h", "--help") for a in args.args):
        raise UsageError(msg)
    module = importlib.import_module(f"{__package__}.{args.command.replace('-', '_')}")
    return int(module.main(list(args.args)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
