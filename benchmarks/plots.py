"""compare.py's plots, drawn so they stay readable.

- An axis of times (or sizes) goes logarithmic when its values span 10x or
  more (``LOG_SPAN``): one slow variant no longer squeezes the others against
  the axis.
- Variant names never sit on the plot area next to points, where ties and
  near-ties made them collide: each variant gets a colour and a marker, and
  its name goes in a legend outside the axes. Tied points are drawn largest
  first, so every marker of a tie stays visible.
- Points that coincide on the drawing (closer than a marker: a float32 file
  hidden behind its float16 twin) are also named in a note under the plot,
  "Same point: A = B (0.05 ms, 99.00%)", so no variant is lost in a ring.

Each ``*_figure`` function builds and returns the figure with a small dict of
what it chose (the axis scales); ``write_plots`` saves them. matplotlib is
optional (imported lazily through ``_common.matplotlib_pyplot``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edgedeploy.bench import _common as C
from edgedeploy.bench.records import VariantEntry

LOG_SPAN = 10.0
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "*")
PLOTS = ("latency_vs_accuracy.png", "size.png", "latency_vs_threads.png")


def wide(values: Sequence[float | None], span: float = LOG_SPAN) -> bool:
    """True when the positive values span ``span`` times or more (log scale then)."""
    vals = [v for v in values if v is not None and v > 0]
    return bool(vals) and max(vals) / min(vals) >= span


def styles(entries: Sequence[VariantEntry]) -> dict[str, dict[str, Any]]:
    """One colour and marker per variant name, the same in every plot."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.name not in out:
            k = len(out)
            out[e.name] = {"color": f"C{k % 10}", "marker": MARKERS[k % len(MARKERS)]}
    return out


def log_axis(axis) -> None:
    """A log axis labelled in plain numbers at 1, 2, 5 x 10^k (decades alone leave a cluster unlabelled)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


COINCIDE_PT = 9.0  # points closer than this (in typographic points, about a marker) count as one spot


def coincident(ax, points: Sequence[tuple[str, float, float]]) -> list[list[tuple[str, float, float]]]:
    """Groups of 2+ ``(name, x, y)`` points that land within ``COINCIDE_PT`` of each other on ``ax``."""
    import math

    fig = ax.figure
    fig.canvas.draw()  # the final limits and scales
    to_pt = 72.0 / fig.dpi
    xy = [ax.transData.transform((x, y)) for _, x, y in points]
    groups: list[list[int]] = []
    for i in range(len(points)):
        for g in groups:
            if any(math.dist(xy[i], xy[j]) * to_pt < COINCIDE_PT for j in g):
                g.append(i)
                break
        else:
            groups.append([i])
    return [[points[i] for i in g] for g in groups if len(g) > 1]


def note_below(ax, lines: Sequence[str]) -> None:
    """Text under the axes' x label (never over the plot or the legend); bbox_inches='tight' keeps it in the PNG."""
    if not lines:
        return
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    below = min(ax.xaxis.label.get_window_extent(renderer).y0, ax.get_tightbbox(renderer).y0)
    x0, y0 = fig.transFigure.inverted().transform((ax.get_window_extent(renderer).x0, below - 6))
    fig.text(x0, y0, "\n".join(lines), fontsize=8, va="top", ha="left")


def legend_outside(ax) -> None:
    leg = ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    # The plot's marker sizes only keep ties visible; in the legend they would read as a magnitude.
    for h in getattr(leg, "legend_handles", None) or getattr(leg, "legendHandles", []):
        if hasattr(h, "set_sizes"):
            h.set_sizes([50])
        elif hasattr(h, "set_markersize"):
            h.set_markersize(7)


def latency_accuracy_figure(plt, entries: Sequence[VariantEntry], reference_accuracy: float | None,
                            within_points: float) -> tuple[Any, dict[str, str]]:
    st = styles(entries)
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    scored = [e for e in entries if e.accuracy is not None]
    log_x = wide([e.p50_ms for e in scored])
    # Largest markers first: a point tied with another stays visible as a ring around it.
    for i, e in enumerate(scored):
        size = 40 + 30 * (len(scored) - 1 - i)
        ax.scatter(e.p50_ms, 100 * e.accuracy, s=size, color=st[e.name]["color"], marker=st[e.name]["marker"],
                   edgecolors="black", linewidths=0.5, alpha=0.85, zorder=3 + i, label=e.name)
    if reference_accuracy is not None:
        ref = 100 * reference_accuracy
        ax.axhspan(ref - within_points, ref, color="tab:green", alpha=0.08, label=f"within {within_points:g} point of float")
        ax.axhline(ref, color="tab:green", lw=0.8, ls="--")
    if scored:
        accs = [100 * e.accuracy for e in scored] + ([100 * reference_accuracy - within_points] if reference_accuracy is not None else [])
        lo, hi = min(accs), max(accs)
        pad = max(0.5, 0.1 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0 + pad / 4, hi + pad))
    if log_x:
        ax.set_xscale("log")
        log_axis(ax.xaxis)
    ax.margins(x=0.06)  # no marker half-hidden on the frame
    ax.set_xlabel("latency p50 (ms, best thread count" + (", log scale)" if log_x else ")"))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Latency vs accuracy (one point per variant)")
    ax.grid(alpha=0.3, which="both" if log_x else "major")
    legend_outside(ax)
    same = coincident(ax, [(e.name, e.p50_ms, 100 * e.accuracy) for e in scored])
    note_below(ax, [f"Same point: {' = '.join(n for n, _, _ in g)} "
                    f"({' / '.join(f'{x:.3g}' for _, x, _ in g)} ms, {g[0][2]:.2f}%)" for g in same])
    return fig, {"x": "log" if log_x else "linear", "y": "linear", "coincident": [[n for n, _, _ in g] for g in same]}


def size_figure(plt, entries: Sequence[VariantEntry]) -> tuple[Any, dict[str, str]]:
    st = styles(entries)
    sizes: dict[str, float] = {}
    for e in entries:
        sizes.setdefault(e.name, e.size_bytes / 1024)
    log_x = wide(list(sizes.values()))
    # Horizontal bars: the names sit one per row on the y axis, so long names cannot collide.
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.45 * len(sizes) + 1.2)))
    ys = list(range(len(sizes)))[::-1]  # the first variant on top
    bars = ax.barh(ys, list(sizes.values()), color=[st[n]["color"] for n in sizes])
    ax.set_yticks(ys, list(sizes), fontsize=8)
    ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=3)
    if log_x:
        ax.set_xscale("log")
        log_axis(ax.xaxis)
    ax.set_xlabel("file size (KB" + (", log scale)" if log_x else ")"))
    ax.margins(x=0.15)
    ax.set_title("Size per variant")
    return fig, {"x": "log" if log_x else "linear", "y": "category"}


def threads_figure(plt, entries: Sequence[VariantEntry], latency_rows: Sequence[dict]) -> tuple[Any, dict[str, str]]:
    st = styles(entries)
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    log_y = wide([r["p50_ms"] for r in latency_rows])
    for i, e in enumerate(entries):
        pts = sorted((r["threads"], r["p50_ms"]) for r in latency_rows if r["path"] == e.path and r["backend"] == e.backend)
        # Larger markers first, as in the scatter plot: tied lines still show every variant's marker.
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=st[e.name]["marker"], label=e.name, color=st[e.name]["color"],
                markersize=5 + 2.5 * (len(entries) - 1 - i), markeredgecolor="black", markeredgewidth=0.5, alpha=0.9)
    if log_y:
        ax.set_yscale("log")
        log_axis(ax.yaxis)
    ax.set_xlabel("threads")
    ax.set_ylabel("latency p50 (ms" + (", log scale)" if log_y else ")"))
    ax.set_xticks(sorted({r["threads"] for r in latency_rows}))
    ax.margins(x=0.08)  # the first and last thread counts' markers clear of the frame
    ax.set_title("Latency vs thread count")
    ax.grid(alpha=0.3, which="both" if log_y else "major")
    legend_outside(ax)
    points = [(e.name, r["threads"], r["p50_ms"]) for e in entries for r in latency_rows
              if r["path"] == e.path and r["backend"] == e.backend]
    by_names: dict[tuple[str, ...], list[int]] = {}
    for g in coincident(ax, points):
        by_names.setdefault(tuple(dict.fromkeys(n for n, _, _ in g)), []).append(int(g[0][1]))
    note_below(ax, [f"Same point: {' = '.join(names)} at {', '.join(map(str, sorted(set(ts))))} thread(s)"
                    for names, ts in by_names.items() if len(names) > 1])
    return fig, {"x": "linear", "y": "log" if log_y else "linear",
                 "coincident": [list(names) for names in by_names if len(names) > 1]}


def write_plots(out: Path, entries: Sequence[VariantEntry], latency_rows: Sequence[dict], force: bool,
                reference_accuracy: float | None, within_points: float) -> tuple[list[str], str | None, dict[str, dict]]:
    """Save the three plots into ``out``; returns (names written, why skipped, axis scales per plot)."""
    plt = C.matplotlib_pyplot()
    if plt is None:
        return [], f"matplotlib is not installed: the tables are complete; for the plots run `{C.PLOT_HINT}` and re-run", {}
    from edgedeploy.core.io import atomic_write_with

    written: list[str] = []
    axes: dict[str, dict] = {}
    figures = (latency_accuracy_figure(plt, entries, reference_accuracy, within_points), size_figure(plt, entries),
               threads_figure(plt, entries, latency_rows))
    for name, (fig, scales) in zip(PLOTS, figures):
        atomic_write_with(out / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), force=force)
        C.readable(out / name)
        plt.close(fig)
        written.append(name)
        axes[name] = scales
    return written, None, axes


def text_boxes(fig) -> list[tuple[str, Any]]:
    """(text, display bbox) of every visible, non-empty text in a drawn figure: for overlap checks."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    out, seen = [], set()
    for t in fig.findobj(Text):  # Text artists only: a legend's TextArea wraps the same Text
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.get_visible() and str(t.get_text()).strip():
            out.append((t.get_text(), t.get_window_extent(renderer)))
    return out
