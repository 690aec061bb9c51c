"""``edgedeploy COMMAND ARGS...``: one entry point beside the console scripts (as ``yolo export`` or
``optimum-cli export`` work). Each command is exactly its console script::

    edgedeploy train ...    = train-model ...
    edgedeploy export ...   = export-model ...
    edgedeploy infer ...    = edge-infer ...
    edgedeploy bench ...    = edge-bench ...

The commands are named here as strings and imported only when run, so ``edgedeploy --help`` is
instant and a device without TensorFlow can run ``edgedeploy infer``.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

from edgedeploy import __version__

PROG = "edgedeploy"
# command -> (console script, "module:function", what it does)
COMMANDS = {
    "train": ("train-model", "edgedeploy.train.cli:main", "train an image classifier into a run folder (train extra)"),
    "export": ("export-model", "edgedeploy.export.cli:main",
               "quantize, gate, select and bundle a model for the device (export extra)"),
    "infer": ("edge-infer", "edgedeploy.runtime.cli:main", "classify images, folders, a video or serve HTTP (edge extra)"),
    "bench": ("edge-bench", "edgedeploy.bench.cli:main", "run a benchmark script (edge extra)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {what} (= {script})" for name, (script, _, what) in COMMANDS.items()]
    lines += ["", f"`{PROG} COMMAND --help` shows a command's own flags."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command's own ``main`` (its exit code: 0 ok, 1 runtime, 2 usage, 3 gate, 130 interrupted)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"{PROG}: error: Received command {name!r}, expected one of: {', '.join(COMMANDS)} "
              f"(see {PROG} --help)", file=sys.stderr)
        return 2
    module, func = COMMANDS[name][1].split(":")
    try:
        entry = getattr(importlib.import_module(module), func)
    except ImportError as exc:  # e.g. `edgedeploy train` on an edge-only install
        extra = "train" if name == "train" else "export" if name == "export" else "edge"
        print(f"{PROG}: error: {name} needs the {extra} extra ({exc.name} is not installed): "
              f"pip install 'edgedeploy[{extra}]'", file=sys.stderr)
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
