"""``--select fastest|smallest|accurate``: the one file to ship, and why.

Candidates are the files the gate accepted. Files proven within the budget
(verdict ``accepted``) come first; only when there is none are the
inconclusive files (accepted under ``--gate evidence``) considered, and the
reason says so.

- ``fastest``: the lowest p50 latency. Measured here, after the export, by
  ``edgedeploy.runtime.measure.measure_file`` (the benchmarks' method, a short run:
  3 warm-up and 20 timed calls), or read from ``--latency-report FILE.json``,
  a report of ``benchmarks/latency.py`` (``results``) or ``compare.py``
  (``latency``) made on the target device. Its rows are matched to the files
  by SHA-256, else by file name.
- ``smallest``: the fewest bytes.
- ``accurate``: the smallest accuracy drop, then the fewest top-1
  disagreements, then the smallest probability difference.

Ties go to the smaller file. The chosen file is copied to
``OUTPUT/selected.<ext>`` with its sidecar manifest ``selected.<ext>.json``.
The report also warns where a file is far slower (``SLOW_FACTOR``) than a
sibling of the same or smaller size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_write_bytes, atomic_write_text

CRITERIA = ("fastest", "smallest", "accurate")
SELECTED_STEM = "selected"
SLOW_FACTOR = 2.0  # "far slower": at least twice the p50 of a sibling no larger
SMALL_FILE = 0.6  # files at most this share of the largest one are the ones picked for their size


@dataclass
class Candidate:
    """What selection needs to know about one accepted file."""

    file: str
    path: Path
    size_bytes: int
    proven: bool  # verdict accepted (not merely inconclusive)
    accuracy_drop: float
    drop_ci: tuple[float, float]
    disagreement: float
    max_prob_diff: float
    sha256: str = ""
    p50_ms: float | None = None
    latency_source: str | None = None

    def brief(self) -> dict[str, Any]:
        return {"file": self.file, "size_bytes": self.size_bytes, "verdict": "accepted" if self.proven else "inconclusive",
                "accuracy_drop": self.accuracy_drop, "accuracy_drop_ci": list(self.drop_ci),
                "top1_disagreement": self.disagreement, "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 4),
                "latency_source": self.latency_source}


# -- checks before any work ---------------------------------------------------------------
def check_selection(select: str | None, latency_report: str | None, n_files: int) -> None:
    if select is not None and select not in CRITERIA:
        raise EdgeDeployError(f"Received --select {select!r}, expected one of: {', '.join(CRITERIA)}")
    if latency_report is not None:
        if select != "fastest":
            raise EdgeDeployError(f"Received --latency-report {latency_report!r} without --select fastest; "
                                  "it is the latency source of --select fastest")
        read_latency_rows(latency_report)


def read_latency_rows(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """The latency rows of a latency.py (``results``) or compare.py (``latency``) JSON report, and its device."""
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise EdgeDeployError(f"Received --latency-report {str(path)!r}: file not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise EdgeDeployError(f"Received --latency-report {str(path)!r}: not a JSON report ({type(exc).__name__})") from None
    rows = data.get("results") if isinstance(data, dict) else None
    if rows is None and isinstance(data, dict):
        rows = data.get("latency")
    if not isinstance(rows, list) or not any(isinstance(r, dict) and "p50_ms" in r for r in rows):
        raise EdgeDeployError(f"Received --latency-report {str(path)!r}, expected the JSON of benchmarks/latency.py "
                              "(--json) or compare.py (report.json), with rows holding p50_ms")
    env = data.get("environment") or {}
    device = env.get("device") or env.get("cpu_model") or "another device"
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("p50_ms"), (int, float))], str(device)


def selected_names(jobs: Sequence[Any]) -> list[str]:
    """selected.<ext> and its sidecar, for every format in the run."""
    suffixes = dict.fromkeys(j.fmt.suffix for j in jobs)
    return [n for s in suffixes for n in (f"{SELECTED_STEM}{s}", f"{SELECTED_STEM}{s}.json")]


def precheck_selected(select: str | None, jobs: Sequence[Any], out_dir: Path, force: bool) -> None:
    if not select:
        return
    for name in selected_names(jobs):
        if (out_dir / name).exists() and not force:
            raise EdgeDeployError(f"refusing to overwrite existing file {out_dir / name}; pass --force to replace it")


# -- latency ----------------------------------------------------------------------------
def match_report(cands: list[Candidate], rows: list[dict[str, Any]], threads: int | None, device: str) -> None:
    """p50 from another device's report: by SHA-256, else by file name; at ``threads`` or the most threads measured."""
    for c in cands:
        mine = [r for r in rows if r.get("sha256") and r.get("sha256") == c.sha256]
        how = "sha256"
        if not mine:
            mine = [r for r in rows if Path(str(r.get("path") or r.get("model") or "")).name == c.file
                    or r.get("variant") == c.file]
            how = "file name"
        if not mine:
            continue
        counts = sorted({int(r.get("threads") or 1) for r in mine})
        t = threads if threads in counts else counts[-1]
        best = min((r for r in mine if int(r.get("threads") or 1) == t), key=lambda r: float(r["p50_ms"]))
        c.p50_ms = float(best["p50_ms"])
        c.latency_source = f"{device}, {best.get('backend', '?')}, {t} thread(s), matched by {how}"


def measure_here(cands: list[Candidate], threads: int | None, log: Callable[[str], None]) -> None:
    from edgedeploy.core.timing import QUICK_RUNS, QUICK_WARMUP
    from edgedeploy.runtime.measure import measure_file

    log(f"measuring latency on this machine ({QUICK_WARMUP} warm-up + {QUICK_RUNS} timed runs, batch 1) ...")
    for c in cands:
        stats = measure_file(c.path, threads=threads, probe="never")
        c.p50_ms = stats["p50_ms"]
        c.latency_source = f"this machine, {stats['backend']}, {stats['threads']} thread(s)"


# -- the choice -----------------------------------------------------------------------------
def rank_key(criterion: str) -> Callable[[Candidate], tuple]:
    if criterion == "fastest":
        return lambda c: (c.p50_ms if c.p50_ms is not None else float("inf"), c.size_bytes)
    if criterion == "smallest":
        return lambda c: (c.size_bytes, c.accuracy_drop)
    return lambda c: (c.accuracy_drop, c.disagreement, c.max_prob_diff, c.size_bytes)


def choose(cands: list[Candidate], criterion: str) -> tuple[Candidate, Candidate | None, bool]:
    """(chosen, runner-up, chose among proven files)."""
    pool = [c for c in cands if c.proven] or list(cands)
    if criterion == "fastest":
        pool = [c for c in pool if c.p50_ms is not None] or pool
    if not pool:
        raise EdgeDeployError("--select: no accepted file to choose from")
    ranked = sorted(pool, key=rank_key(criterion))
    return ranked[0], (ranked[1] if len(ranked) > 1 else None), pool[0].proven


def slow_warnings(cands: list[Candidate], factor: float = SLOW_FACTOR) -> list[str]:
    """Reduced-size files at least ``factor`` x slower (p50) than a sibling of the same size or smaller.

    Only files a user would pick for their size are checked (at most
    ``SMALL_FILE`` of the largest file): a float32 file being slower than an
    int8 one is no surprise worth a warning.
    """
    out = []
    timed = [c for c in cands if c.p50_ms]
    largest = max((c.size_bytes for c in cands), default=0)
    for c in timed:
        if c.size_bytes > SMALL_FILE * largest:
            continue
        faster = [s for s in timed if s is not c and s.size_bytes <= c.size_bytes and c.p50_ms >= factor * s.p50_ms]
        if faster:
            s = min(faster, key=lambda x: x.p50_ms)
            out.append(f"{c.file} ({c.size_bytes / 1024:.0f} KB) runs {c.p50_ms / s.p50_ms:.1f}x slower than "
                       f"{s.file} ({s.size_bytes / 1024:.0f} KB, no larger): p50 {c.p50_ms:.3g} ms vs {s.p50_ms:.3g} ms")
    return out


def better_unproven(cands: list[Candidate], chosen: Candidate, criterion: str) -> list[Candidate]:
    """Inconclusive files that would rank above the chosen proven one."""
    key = rank_key(criterion)
    return sorted((c for c in cands if not c.proven and key(c) < key(chosen)
                   and (criterion != "fastest" or c.p50_ms is not None)), key=key)


def reason_lines(criterion: str, chosen: Candidate, runner: Candidate | None, proven: bool,
                 unproven: Sequence[Candidate] = ()) -> list[str]:
    lo, hi = chosen.drop_ci
    p50 = "n/a" if chosen.p50_ms is None else f"{chosen.p50_ms:.3g} ms"
    lines = [f"{chosen.file} is the {criterion} accepted file: {chosen.size_bytes / 1024:.1f} KB, p50 {p50} "
             f"({chosen.latency_source or 'not measured'}), accuracy drop {chosen.accuracy_drop:+.2f} points "
             f"(95% interval [{lo:+.2f}, {hi:+.2f}])."]
    if not proven:
        lines.append("No file was proven within the budget; it was chosen among the inconclusive files the "
                     "evidence policy accepted.")
    if runner is not None:
        rp = "n/a" if runner.p50_ms is None else f"{runner.p50_ms:.3g} ms"
        lines.append(f"Runner-up: {runner.file}, {runner.size_bytes / 1024:.1f} KB, p50 {rp}, accuracy drop "
                     f"{runner.accuracy_drop:+.2f} points (95% [{runner.drop_ci[0]:+.2f}, {runner.drop_ci[1]:+.2f}]).")
    if proven and unproven:
        names = ", ".join(c.file + ("" if c.p50_ms is None else f" (p50 {c.p50_ms:.3g} ms)") for c in unproven[:3])
        lines.append(f"Would rank higher but are only inconclusive (not proven within the budget): {names}; "
                     "more evidence images (--parity-samples, --parity-data) could qualify them.")
    return lines


def candidates_from(results: Sequence[Any]) -> list[Candidate]:
    from edgedeploy.runtime.manifest import sha256_file

    out = []
    for r in results:
        if not r.accepted or r.verdict is None or r.dest is None:
            continue
        v = r.verdict
        out.append(Candidate(file=r.file, path=r.dest, size_bytes=int(r.size_bytes or 0), proven=v.verdict == "accepted",
                             accuracy_drop=float(r.metrics.get("accuracy_drop", 0.0)),
                             drop_ci=(round(v.accuracy_drop.lo, 3), round(v.accuracy_drop.hi, 3)),
                             disagreement=v.disagreement.estimate, max_prob_diff=float(r.metrics.get("max_abs_prob_diff", 0.0)),
                             sha256=sha256_file(r.dest)))
    return out


def select_and_write(results: Sequence[Any], out_dir: Path, opts: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Choose, copy to ``selected.<ext>`` (+ sidecar), and return the report's ``selection`` entry."""
    cands = candidates_from(results)
    if not cands:
        raise EdgeDeployError(f"--select {opts.select}: no file was accepted, nothing to select")
    if opts.latency_report:
        rows, device = read_latency_rows(opts.latency_report)
        match_report(cands, rows, opts.threads, device)
        if not any(c.p50_ms is not None for c in cands):
            raise EdgeDeployError(f"Received --latency-report {opts.latency_report!r}, which has no row for any accepted "
                                  "file (matched by sha256 or file name)")
    else:
        measure_here(cands, opts.threads, log)
    chosen, runner, proven = choose(cands, opts.select)
    suffix = "".join(chosen.path.suffixes[-1:])
    dest = out_dir / f"{SELECTED_STEM}{suffix}"
    for name in {f"{SELECTED_STEM}{Path(c.file).suffix}" for c in cands} - {dest.name}:  # a stale choice (--force)
        (out_dir / name).unlink(missing_ok=True)
        (out_dir / f"{name}.json").unlink(missing_ok=True)
    atomic_write_bytes(dest, chosen.path.read_bytes(), force=True)
    sidecar = chosen.path.with_name(chosen.path.name + ".json")
    if sidecar.is_file():
        atomic_write_text(dest.with_name(dest.name + ".json"), sidecar.read_text("utf-8"), force=True)
    lines = reason_lines(opts.select, chosen, runner, proven, better_unproven(cands, chosen, opts.select) if proven else ())
    warnings = slow_warnings(cands)
    for line in lines + [f"warning: {w}" for w in warnings]:
        log(f"  select: {line}")
    log(f"  wrote {dest} (a copy of {chosen.file})")
    return {"criterion": opts.select, "chosen": chosen.file, "written": dest.name, "reason": lines,
            "runner_up": runner.file if runner else None, "latency_source": chosen.latency_source,
            "max_accuracy_drop": opts.max_accuracy_drop, "candidates": [c.brief() for c in cands],
            "slow_warnings": warnings}
