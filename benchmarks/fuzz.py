"""Full fuzz run: mutated model files and images against ImageClassifier, crash-proof.

    python benchmarks/fuzz.py MODEL_OR_DIR... [--cases N] [--image-cases N] [--seed S] [--out reports]

For each model file given (``.tflite``/``.onnx``; folders are searched), N
mutated copies are loaded and run, and N mutated images per seed format are
classified with the first model. Every case runs in a worker subprocess
(``edge_runtime.fuzzing.FuzzWorker``), so a native crash is recorded, not
fatal. Model cases run with the subprocess probe OFF, measuring the Python
verifiers alone; each crash (a verifier gap) is re-run with the probe ON, as
users get it by default, and must then end in a one-line ModelError.

Writes ``OUT/fuzz.json`` and ``OUT/fuzz.md``: per target the outcome counts
(ok, error, unexpected, crash, hang), the verifier gaps and whether the probe
contained each. Exit 0 when every case was acceptable, 1 otherwise, 2 on a
usage error. Needs only the ``edge`` extra: mutations come from a seeded
``random.Random``, no hypothesis needed.
"""
from __future__ import annotations

import platform
import random
import sys
import time
from pathlib import Path

from edgedeploy.bench.fuzzing import FuzzWorker, apply_mutations, random_mutations, seed_images
from edgedeploy.core.command import ArgumentParser, run_argv
from edgedeploy.core.environment import describe_cpu, environment
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.io import atomic_write_json, atomic_write_text
from edgedeploy.runtime.formats import describe_suffixes, format_for_path, is_model_path

IMAGE_SEEDS = ("rgb.jpg", "rgb.png", "exif_rotated.jpg", "cmyk.jpg", "palette.png", "gray16.png", "anim.gif",
               "rgb.webp", "rgb.tiff", "rgb.bmp")


def _models(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if is_model_path(q) and q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise EdgeDeployError(f"model not found: {item}")
    if not out:
        raise EdgeDeployError(f"no {describe_suffixes()} files in {', '.join(items)}")
    return out


def fuzz_target(worker: FuzzWorker, kind: str, seed: bytes, suffix: str, cases: int, rng: random.Random,
                examples: list) -> dict:
    """Run ``cases`` mutations of one seed; returns the outcome counts."""
    counts = {"ok": 0, "error": 0, "unexpected": 0, "crash": 0, "hang": 0}
    gaps = contained = 0
    t0 = time.perf_counter()
    for _ in range(cases):
        muts = random_mutations(rng)
        data = apply_mutations(seed, muts)
        r = worker.run(kind, data, suffix, probe="never")
        counts[r.outcome] += 1
        if kind == "model" and r.outcome == "crash":
            gaps += 1
            guarded = worker.run(kind, data, suffix, probe="always")
            contained += guarded.acceptable
            if not guarded.acceptable:
                examples.append({"mutations": muts, "outcome": guarded.outcome, "detail": guarded.detail, "probe": "always"})
            elif len(examples) < 50:
                examples.append({"mutations": muts, "outcome": "crash (probe off)", "detail": guarded.detail, "probe": "contained"})
        elif not r.acceptable and len(examples) < 50:
            examples.append({"mutations": muts, "outcome": r.outcome, "detail": r.detail})
    out = {"cases": cases, "seconds": round(time.perf_counter() - t0, 2), **counts}
    if kind == "model":
        out.update(verifier_gaps=gaps, contained_by_probe=contained)
    return out


def baseline(worker: FuzzWorker, seed: bytes, suffix: str, cases: int, rng: random.Random) -> dict:
    """The same kind of mutations handed straight to the runtime: how often it crashes unguarded."""
    counts = {"ok": 0, "error": 0, "crash": 0, "hang": 0, "unexpected": 0}
    for _ in range(cases):
        counts[worker.run("model", apply_mutations(seed, random_mutations(rng)), suffix, probe="raw").outcome] += 1
    return {"cases": cases, **counts}


def _markdown(report: dict) -> str:
    machine = report["machine"] + (f" ({describe_cpu(report['environment'])})" if report.get("environment") else "")
    lines = ["# Fuzzing report", "", f"{report['total_cases']} cases, seed {report['seed']}, "
             f"{machine}, {report['seconds']} s. Unacceptable outcomes: **{report['unacceptable']}**.", "",
             "| target | kind | cases | ok | error | unexpected | crash (probe off) | contained by probe | hang |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} | {t['kind']} | {t['cases']} | {t['ok']} | {t['error']} | {t['unexpected']} | "
                     f"{t['crash']} | {t.get('contained_by_probe', '-')} | {t['hang']} |")
    lines += ["", "Model cases load with the subprocess probe off, so a crash there is a gap in the Python verifier;",
              "each is re-run with the probe on (the default) and must end in a one-line ModelError.", ""]
    if report.get("baseline"):
        lines += ["Baseline: the same kind of mutations handed straight to the runtime, without edgedeploy's checks:", "",
                  "| target | cases | loaded and ran | refused | crashed the process | hang |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {n} | {b['cases']} | {b['ok']} | {b['error']} | {b['crash']} | {b['hang']} |" for n, b in report["baseline"].items()]
        lines.append("")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    """The script's parser (flags anywhere: the shared ArgumentParser parses intermixed)."""
    p = ArgumentParser(prog="benchmarks/fuzz.py", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="model files or folders holding them")
    p.add_argument("--cases", type=int, default=2000, help="mutations per model file (default 2000)")
    p.add_argument("--image-cases", type=int, default=None, help="mutations per image format (default: --cases // 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    p.add_argument("--baseline", type=int, default=0, metavar="N",
                   help="also hand N mutated copies of each model straight to the runtime (no checks) and count crashes")
    p.add_argument("--out", default="reports", help="folder for fuzz.json and fuzz.md")
    return p


def _run(argv: list[str]) -> int:
    """Run the campaign and write the reports.

    Args:
        argv: command-line arguments (see the module docstring).

    Returns:
        0 if every case was acceptable, 1 if not, 2 on a usage error.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.cases < 1:
            raise EdgeDeployError(f"Received --cases {args.cases}, expected an integer >= 1")
        models = _models(args.models)
        rng = random.Random(args.seed)
        targets, examples = {}, []
        t0 = time.perf_counter()
        with FuzzWorker(models[0], timeout=args.timeout) as worker:
            for m in models:
                print(f"fuzzing {m.name} ({args.cases} cases)", file=sys.stderr, flush=True)
                targets[m.name] = {"kind": "model", **fuzz_target(worker, "model", m.read_bytes(), format_for_path(m).suffix, args.cases, rng, examples)}
            n_img = args.image_cases or max(50, args.cases // 4)
            seeds = seed_images()
            for name in IMAGE_SEEDS:
                print(f"fuzzing {name} ({n_img} cases)", file=sys.stderr, flush=True)
                targets[name] = {"kind": "image", **fuzz_target(worker, "image", seeds[name], "", n_img, rng, examples)}
            base = {}
            for m in models if args.baseline else []:
                print(f"baseline {m.name} ({args.baseline} cases, no checks)", file=sys.stderr, flush=True)
                base[m.name] = baseline(worker, m.read_bytes(), format_for_path(m).suffix, args.baseline, random.Random(args.seed + 1))
            restarts = worker.restarts
        bad = sum(t["unexpected"] + t["hang"] + (t["crash"] - t.get("contained_by_probe", 0)) for t in targets.values())
        report = {"total_cases": sum(t["cases"] for t in targets.values()), "unacceptable": bad, "seed": args.seed,
                  "seconds": round(time.perf_counter() - t0, 1), "worker_restarts": restarts,
                  "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
                  "environment": environment(), "targets": targets, "baseline": base, "examples": examples}
        out = Path(args.out)
        atomic_write_json(out / "fuzz.json", report, force=True)
        atomic_write_text(out / "fuzz.md", _markdown(report), force=True)
    except EdgeDeployError as exc:
        print(f"fuzz: error: {exc}", file=sys.stderr)
        return 2
    print(_markdown(report))
    print(f"wrote {out / 'fuzz.json'} and {out / 'fuzz.md'}", file=sys.stderr)
    return 0 if bad == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point through edge_runtime.command (one-line errors: exit 2; Ctrl-C: 130; --debug: traceback)."""
    return run_argv("fuzz.py", _run, argv)


if __name__ == "__main__":
    sys.exit(main())
