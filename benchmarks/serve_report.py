"""The Markdown of benchmarks/serve_load.py's report (its first table is the README figure)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.bench import _common as C
from edgedeploy.bench.cpu import flags_text


def _statuses(d: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def load_table(report: dict[str, Any]) -> str:
    r, d = report["result"], report["server_defaults"]

    def server(key: str) -> Any:
        return r[key] if r.get(key) is not None else f"{d[key]} (default)"

    rss = r["rss_kb"]
    rows = [["normal clients (keep-alive)", f"{r['clients']} concurrent, {r['requests']} requests after {sum(r['warmup_statuses'].values())} warm-up"],
            ["slow-body clients", f"{r['slow_clients']} (1 byte every {r['slow_interval_s']:g} s)"],
            ["--max-concurrent / --max-queue / --max-batch",
             f"{r['max_concurrent']} / {server('max_queue')} / {server('max_batch')}"],
            ["--request-timeout / --threads", f"{r['request_timeout_s']:g} s / {r['threads'] or 'default'}"],
            ["normal clients' statuses", _statuses(r["statuses"])],
            ["**non-2xx answers to the normal clients**", f"**{r['non_2xx']}**"],
            ["p50 / p99 / max latency", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} ms"],
            ["throughput through the server", f"{r['throughput_rps']:.0f} requests/s (mean batch {r['mean_batch']})"],
            ["ImageClassifier.predict directly (one Python thread)", f"{r['direct_predict_ips']:.0f} images/s"],
            ["server / direct", f"{r['throughput_vs_direct']:.2f}"],
            ["load generator's CPU share (it shares these cores)",
             f"{_share(r['generator_cpu_share'])} ({r['generator_cpu_s']:.1f} s of {r['generator_cpu_s'] + r['server_cpu_s']:.1f} CPU s)"],
            ["slow clients' answers", _statuses(r["slow_statuses"])],
            ["longest a slow connection stayed open", f"{r['slow_longest_open_s']:.1f} s"],
            ["server RSS start / after warm-up / end", f"{rss['start'] / 1024:.1f} / {rss['after_warmup'] / 1024:.1f} / {rss['end'] / 1024:.1f} MB"],
            ["RSS growth during the load", f"{r['rss_growth_kb'] / 1024:+.2f} MB"],
            ["server exit code after SIGTERM", r["server_exit_code"]]]
    return C.table(["what", "value"], rows, markdown=True)


def batching_table(report: dict[str, Any]) -> list[str]:
    rows, base = [], {}
    for b in report["batching"]:
        base.setdefault(b["model"], b["throughput_rps"])  # the first --max-batch of each model
        rows.append([b["model"], b["max_batch"], b["mean_batch"], C.fmt(b["throughput_rps"], 1),
                     C.fmt(b["throughput_rps"] / base[b["model"]]) if base[b["model"]] else "n/a",
                     f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f}", b["non_2xx"], _share(b["generator_cpu_share"]),
                     ", ".join(f"{v:.0f}" for v in b.get("all_rps", [b["throughput_rps"]]))])
    if not rows:
        return []
    return ["## Batching: --max-batch compared, same run (JPEG payloads, no slow clients)", "",
            C.table(["model", "--max-batch", "mean images per call", "requests/s (best)", "x its first row", "p50 / p99 ms",
                     "non-2xx", "generator CPU share", "every round, requests/s"], rows, markdown=True), "",
            "Each row: one server per round, the rounds interleaved over every model and --max-batch, the best round "
            "shown; a batch of 2..max-1 images is padded to --max-batch (the runtime sees two shapes).", ""]


def sweep_table(report: dict[str, Any]) -> list[str]:
    rows = [[s["max_queue"], _statuses(s["statuses"]), s["non_2xx"], f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}",
             C.fmt(s["throughput_rps"], 1)] for s in report["queue_sweep"]]
    if not rows:
        return []
    clients = report["queue_sweep"][0]["clients"]
    return [f"## Queue bound: --max-queue at {clients} clients (--max-concurrent {report['result']['max_concurrent']})", "",
            C.table(["--max-queue", "statuses", "non-2xx", "p50 / p99 ms", "requests/s"], rows, markdown=True), ""]


def render_md(report: dict[str, Any]) -> str:
    env, cpu = report["environment"], report.get("cpu") or {}
    head = (f"# Serve load: {report['result']['clients']} keep-alive clients beside slow ones, batching, the queue\n\n"
            f"One run on one machine: {cpu.get('model', env['device'])} ({env['cpu_cores_usable']} usable cores; "
            f"{flags_text(cpu.get('flags', {}))}), Python {env['python']}, {report['created']}; load average (1/5/15 min) "
            f"{', '.join(f'{v:.1f}' for v in cpu.get('load_average', []))} when it ended: other jobs share these cores. "
            f"Model: `{Path(report['model']).name}`; payloads: {report['payloads']}. Command: `{report['command']}`.\n\n")
    d = report["server_defaults"]
    tail = [f"Server defaults: --max-concurrent {d['max_concurrent']}, --max-queue {d['max_queue']}, "
            f"--max-batch {d['max_batch']}, --batch-timeout-ms {d['batch_timeout_ms']:g}.", ""]
    return head + load_table(report) + "\n\n" + "\n".join(batching_table(report) + sweep_table(report) + tail)
