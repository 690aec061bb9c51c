"""What the benchmark scripts share: path set-up, errors, discovery, RSS, environment, output.

The scripts run as ``python benchmarks/<name>.py`` on a laptop or on the Pi
itself, with only the ``edge`` extra installed (numpy, Pillow, a runtime).
They import ``edge_runtime`` and the standard library, numpy, and matplotlib
when it happens to be installed; never tensorflow, keras, train or export.
psutil is not on a Pi: memory comes from ``resource.getrusage`` and /proc.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from edgedeploy.core import command
from edgedeploy.core.environment import EDGE_PACKAGES as PACKAGES  # noqa: F401  (captured once, there)
from edgedeploy.core.environment import cpu_model, environment, package_versions  # noqa: F401
from edgedeploy.core.errors import EdgeDeployError, ModelError
from edgedeploy.core.progress import Progress  # noqa: F401  (the scripts' progress bar: C.Progress)
from edgedeploy.runtime.formats import REJECTED_SUFFIX

REPORT_SCHEMA = 1
DEFAULT_SEED = 0
PLOT_HINT = "pip install matplotlib"


def runtime_modules() -> dict[str, str]:
    """Backend name -> the module it imports when it opens a model (timed apart from the load).

    Read from the backends registry, so a new backend (or a plug-in named in
    EDGEDEPLOY_BACKENDS) is measured like the built-in ones.
    """
    from edgedeploy.runtime.backends import runtime_modules as from_registry

    return from_registry()


def runtime_names() -> list[str]:
    """Every registered backend a benchmark can measure ("auto" not included)."""
    from edgedeploy.runtime.backends import backend_names

    return backend_names()


# -- command line -----------------------------------------------------------------
class Requires:
    """What a script needs beyond the ``edge`` extra, declared as ``REQUIRES = Requires("train", "tensorflow")``.

    ``edge-bench list`` lists a script only where its modules are installed (and says in one line
    which extra the others need); ``edge-bench NAME`` and the script itself refuse with that line
    (exit 2) instead of a traceback deep inside.
    """

    def __init__(self, extra: str, *modules: str) -> None:
        self.extra, self.modules = extra, modules

    def missing(self) -> list[str]:
        import importlib.util

        out = []
        for name in self.modules:
            if name in sys.modules:
                if sys.modules[name] is None:  # blocked (tests), as on an install without it
                    out.append(name)
                continue
            try:
                if importlib.util.find_spec(name) is None:
                    out.append(name)
            except (ImportError, ValueError):
                out.append(name)
        return out

    def message(self, prog: str) -> str | None:
        """None when everything is installed, else one line naming the extra and how to get it."""
        gone = self.missing()
        if not gone:
            return None
        return (f"{prog} needs the {self.extra} extra ({', '.join(gone)} is not installed here): "
                f"pip install 'edgedeploy[{self.extra}]'")

    def check(self, prog: str) -> None:
        msg = self.message(prog)
        if msg:
            raise command.UsageError(msg)


class ArgumentParser(command.ArgumentParser):
    """The shared parser (edge_runtime/command.py): a usage mistake is one UsageError line, exit 2."""


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def run_main(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None, prog: str) -> int:
    """Run a script body through edge_runtime.command (exit codes 0/1/2/3/130, one-line errors, --debug)."""
    return command.run_argv(prog, body, argv)


def parse_int_list(text: str, name: str, minimum: int = 1) -> list[int]:
    """'1,2,4' -> [1, 2, 4], with a one-line error naming the bad value."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise EdgeDeployError(f"Received {name}={text!r}, expected comma-separated integers >= {minimum}, e.g. 1,2,4") from None
        if v < minimum:
            raise EdgeDeployError(f"Received {name}={text!r}, expected integers >= {minimum}")
        if v not in out:
            out.append(v)
    if not out:
        raise EdgeDeployError(f"Received {name}={text!r}, expected at least one integer")
    return out


def positive_int(name: str, minimum: int = 1) -> Callable[[str], int]:
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise EdgeDeployError(f"Received {name}={text!r}, expected an integer >= {minimum}") from None
        if v < minimum:
            raise EdgeDeployError(f"Received {name}={text!r}, expected an integer >= {minimum}")
        return v

    return conv


def cpu_count() -> int:
    """The default thread count: edge_runtime.environment.default_threads (one definition)."""
    from edgedeploy.core.environment import default_threads

    return default_threads()


# -- models -----------------------------------------------------------------------
_ORDER = {"none": 0, "float32": 0, "float16": 1, "dynamic": 2, "int16x8": 3, "int8": 4}


def discover_models(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Model files from files and export folders (every model file inside), in a stable order."""
    from edgedeploy.runtime.formats import describe_suffixes, is_model_path

    found: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.exists():
            raise ModelError(f"model file or folder not found: {p}")
        if p.is_dir():
            models = sorted(q for q in p.iterdir() if is_model_path(q) and q.is_file() and not q.name.startswith("."))
            if not models:
                raise ModelError(f"no {describe_suffixes()} models in folder {p}")
            models.sort(key=_variant_order)
            found.extend(models)
        elif p.name.endswith(REJECTED_SUFFIX) and is_model_path(Path(p.name[: -len(REJECTED_SUFFIX)])):
            found.append(rejected_view(p))  # asked for by name: measure a file the parity gate rejected
        elif not is_model_path(p):
            raise ModelError(f"unsupported model file {p}; expected a {describe_suffixes()} file, or an export folder")
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def alias_label(alias: str, kept: str) -> str:
    """How a file that is a byte-for-byte copy of another is shown: ``selected = model_dynamic.tflite``."""
    stem = Path(alias).name
    return f"{'selected' if stem.startswith('selected.') else stem} = {Path(kept).name}"


def same_files(models: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """The models with byte-identical copies left out (by SHA-256), and the copies left out.

    ``export-model --select`` writes ``selected.<ext>``, a copy of one of the files beside it: measuring
    both would time one file twice (and report the two runs' noise as a difference). Of a group of
    identical files the one kept is the first whose name is not ``selected.*``. Each copy left out is
    ``{"file", "path", "same_as", "same_as_path", "sha256", "label"}`` (label: ``selected = model_dynamic.tflite``).
    """
    groups: dict[str, list[Path]] = {}
    for m in models:
        groups.setdefault(sha256_file(m), []).append(m)
    kept: list[Path] = []
    copies: list[dict[str, str]] = []
    for digest, group in groups.items():
        keep = next((m for m in group if not m.name.startswith("selected.")), group[0])
        kept.append(keep)
        for m in group:
            if m is not keep:
                copies.append({"file": m.name, "path": str(m), "same_as": keep.name, "same_as_path": str(keep),
                               "sha256": digest, "label": alias_label(m.name, keep.name)})
    order = {m: i for i, m in enumerate(models)}
    return sorted(kept, key=order.__getitem__), copies


_REJECTED_VIEWS: list[Any] = []


def rejected_view(p: Path) -> Path:
    """A link ``model_int8.rejected.tflite`` -> ``model_int8.tflite.rejected`` in a temporary folder.

    The runtimes pick a file's format by its suffix; the link gives the
    rejected file its model suffix while its name still says "rejected" in
    every table. Folders are never searched for rejected files: only a file
    named on the command line is opened.
    """
    import tempfile

    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    tmp = tempfile.TemporaryDirectory(prefix="edgedeploy-rejected-")
    _REJECTED_VIEWS.append(tmp)  # removed at exit
    inner = Path(p.name[: -len(REJECTED_SUFFIX)])
    link = Path(tmp.name) / f"{inner.stem}.rejected{inner.suffix}"
    link.symlink_to(p.resolve())
    print(f"note: {p} failed export-model's parity gate; measuring it because it was named explicitly", file=sys.stderr)
    return link


def _variant_order(p: Path) -> tuple:
    # the formats in their listing order (TFLite first), each float32 first, then its quantized modes
    from edgedeploy.runtime.formats import format_for_path

    mode = p.stem.split("_", 1)[1] if p.stem.startswith("model_") else p.stem
    return (format_for_path(p).order, _ORDER.get(mode, 9), p.name)


def read_manifest(path: Path):
    """The model's manifest (embedded, else sidecar) without opening a runtime; None if absent."""
    from edgedeploy.runtime.classifier import load_manifest_for

    return load_manifest_for(path)


def variant_info(path: Path) -> dict[str, Any]:
    """Name, format, quantization and size of a model file, from its manifest where it has one."""
    from edgedeploy.runtime.formats import format_for_path

    m = read_manifest(path)
    fmt = format_for_path(path)
    quant = m.quantize if m is not None else None
    if quant is None:
        stem = path.stem
        quant = stem.split("_", 1)[1] if stem.startswith("model_") else "unknown"
    mode = "float32" if quant == "none" else quant
    return {
        "variant": path.name,
        "label": f"{fmt.display_name} {mode}",
        "path": str(path),
        "format": fmt.name,
        "quantize": quant,
        "is_float": quant in ("none", "float32"),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "macs": m.macs if m is not None else None,
        "manifest_found": m is not None,
        "export_metrics": dict(m.metrics) if m is not None else {},
    }


def sha256_file(path: Path) -> str:
    from edgedeploy.runtime.manifest import sha256_file as _sha

    return _sha(path)


def check_backend_names(names: Sequence[str]) -> list[str]:
    """Validate --backend names against the registry (one-line error listing the known ones)."""
    from edgedeploy.runtime.backends import BACKENDS

    for n in names:
        if n != "auto":
            BACKENDS.get(n)
    return list(names)


def backends_for(path: Path, names: Sequence[str]) -> list[str]:
    """The requested backends that read this file and are installed (by name)."""
    from edgedeploy.runtime.backends import BACKENDS, resolve_backend

    if list(names) == ["auto"]:
        return [resolve_backend(path, "auto").name]
    chosen = []
    for n in names:
        if n == "auto":
            chosen.append(resolve_backend(path, "auto").name)
        elif BACKENDS.get(n).reads(path):
            chosen.append(resolve_backend(path, n).name)  # raises if not installed
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        raise EdgeDeployError(f"none of the backends {', '.join(names)} reads {path.name}")
    return chosen


# -- memory -----------------------------------------------------------------------
def peak_rss_bytes() -> int:
    """Peak resident set size of this process: VmHWM from /proc (Linux, the Pi), else ru_maxrss.

    Not ``ru_maxrss`` on Linux: the kernel carries it across fork and exec, so a
    freshly started ``python`` child reports its parent's peak when that was
    larger (compare.py showed the same 113 MB for every variant). VmHWM
    belongs to the process's own address space, which exec replaces.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def current_rss_bytes() -> int:
    """Current resident set size, from /proc (Linux, the Pi); peak RSS elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def mb(n: float | None) -> float | None:
    return None if n is None else round(n / 1e6, 2)


# -- statistics --------------------------------------------------------------------
def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """mean/std/min/max/p50/p90/p99 in milliseconds: edge_runtime.timing's, with a one-line user error."""
    from edgedeploy.core.timing import latency_stats as stats

    try:
        return stats(seconds)
    except ValueError as exc:
        raise EdgeDeployError(str(exc)) from None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# -- output -----------------------------------------------------------------------
def check_outputs(paths: Iterable[str | os.PathLike | None], force: bool) -> None:
    """Fail before any work if an output exists (without --force) or cannot be written."""
    from edgedeploy.core.io import check_writable

    for p in paths:
        if p is not None:
            check_writable(p, force)


def readable(path: str | os.PathLike) -> Path:
    """Give a report the usual permissions (0666 less the umask): atomic writes start as 0600 temp files."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, force: bool) -> Path:
    from edgedeploy.core.io import atomic_write_json

    return readable(atomic_write_json(path, obj, force=force))


def write_text(path: str | os.PathLike, text: str, force: bool) -> Path:
    from edgedeploy.core.io import atomic_write_text

    return readable(atomic_write_text(path, text, force=force))


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]], force: bool) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return write_text(path, buf.getvalue(), force)


def load_json_report(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise EdgeDeployError(f"report not found: {p}" if not p.is_dir() else f"expected a report JSON file, got a directory: {p}")
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgeDeployError(f"report {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "tool" not in data:
        raise EdgeDeployError(f"{p} is not an edgedeploy benchmark report (no 'tool' field)")
    return data


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """A plain-text (aligned) or markdown table."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def matplotlib_pyplot():
    """pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
