"""Host-side helpers for scripts/pi_emulation.sh (run with the host's Python).

Sub-commands:
  mirrors CODENAME            print the apt sources this machine already uses, as
                              one-line "deb URI SUITE COMPONENTS" entries, with the
                              host's codename replaced by CODENAME (never hardcoded)
  images OUT N                write N held-out digits test images as PNGs
  compare X86_DIR ARM_DIR     compare `edge-infer --json` outputs, same top-1?
  wheel-requires WHEEL        print the wheel's Requires-Dist (for the cache key)
  test-fixtures REPO OUT      build (with TF, on x86) the model files the TF-free tests
                              read, with the tests' own helpers, and copy them to OUT,
                              so those tests run on the Pi instead of skipping

Only the standard library is needed for mirrors/compare/wheel-requires; images
needs numpy + Pillow (the edge extra); test-fixtures needs TensorFlow.
"""
from __future__ import annotations

import glob
import json
import os
import re
import sys
import zipfile
from pathlib import Path

# --------------------------------------------------------------------------- apt


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v.strip().strip('"')
    except OSError:
        pass
    return out


def _deb822_entries(text: str):
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, val = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = val.strip()
        if not fields or fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield uri, suite, fields.get("components", "main").split()


def _one_line_entries(text: str):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        parts = line.split()[1:]
        if parts and parts[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while parts and not parts[0].endswith("]"):
                parts.pop(0)
            parts = parts[1:]
        if len(parts) >= 2:
            yield parts[0], parts[1], parts[2:] or ["main"]


def apt_entries():
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for f in files:
        if not f.is_file():
            continue
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            yield from _deb822_entries(text)
        elif f.suffix == ".list" or f.name == "sources.list":
            yield from _one_line_entries(text)


def cmd_mirrors(codename: str) -> int:
    """Debian archive entries of the host's apt config, re-targeted at CODENAME."""
    osr = _os_release()
    host = osr.get("VERSION_CODENAME", "")
    if osr.get("ID") != "debian" and "debian" not in osr.get("ID_LIKE", "").split():
        print(f"this host is {osr.get('ID', 'unknown')!r}, not Debian: its apt mirrors are not Debian's", file=sys.stderr)
        return 1
    seen = []
    for uri, suite, _comps in apt_entries():
        base, _, pocket = suite.partition("-")
        if base != host or pocket not in ("", "updates", "security"):
            continue
        line = f"deb {uri} {codename}{'-' + pocket if pocket else ''} main"
        if line not in seen:
            seen.append(line)
    if not any(f" {codename} " in s for s in seen):
        print(f"no Debian '{host}' archive entry found in /etc/apt/sources.list*", file=sys.stderr)
        return 1
    # the main archive first: mmdebstrap and the backports source use it
    seen.sort(key=lambda s: (f" {codename} " not in s, s))
    print("\n".join(seen))
    return 0


# ------------------------------------------------------------------------ images


def cmd_images(out: str, n: int) -> int:
    import numpy as np
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    test = load_digits("test")
    os.makedirs(out, exist_ok=True)
    # one image per class first, so every label is exercised
    picked: list[int] = []
    for c in range(10):
        idx = np.flatnonzero(test.labels == c)
        if len(idx):
            picked.append(int(idx[0]))
    picked += [i for i in range(len(test)) if i not in picked]
    for k, i in enumerate(picked[:n]):
        Image.fromarray(test.images[i]).save(os.path.join(out, f"digit_{k:02d}_true{int(test.labels[i])}.png"))
    print(f"wrote {min(n, len(picked))} digits test images to {out}")
    return 0


def cmd_nchw(src: str, dst: str, folder: str, per_class: int) -> int:
    """A PyTorch-style file from the digits run's float ONNX (NCHW behind a Transpose, no manifest: what
    torch.onnx.export hands over) and a labelled digits folder to calibrate and gate it (issue 21)."""
    import onnx
    from onnx import helper
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    m = onnx.load(src)
    del m.metadata_props[:]
    old = m.graph.input[0]
    n, h, w, c = old.type.tensor_type.shape.dim
    new = helper.make_tensor_value_info("input", old.type.tensor_type.elem_type,
                                        [n.dim_param or n.dim_value, c.dim_value, h.dim_value, w.dim_value])
    m.graph.node.insert(0, helper.make_node("Transpose", ["input"], [old.name], perm=[0, 2, 3, 1]))
    m.graph.input.remove(old)
    m.graph.input.insert(0, new)
    onnx.save(m, dst)
    test, counts = load_digits("test"), {}
    for i, (img, lab) in enumerate(zip(test.images, test.labels)):
        if counts.get(int(lab), 0) < per_class:
            counts[int(lab)] = counts.get(int(lab), 0) + 1
            os.makedirs(os.path.join(folder, str(lab)), exist_ok=True)
            Image.fromarray(img).save(os.path.join(folder, str(lab), f"d{i:04d}.png"))
    print(f"wrote {dst} (NCHW {c.dim_value}x{h.dim_value}x{w.dim_value}) and {sum(counts.values())} labelled digits in {folder}")
    return 0


# ----------------------------------------------------------------------- compare


def _load_jsonl(path: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                rows[os.path.basename(d["path"])] = d
    return rows


def cmd_compare(x86_dir: str, arm_dir: str) -> int:
    """Every arm/*.jsonl against x86/<model>.jsonl: same top-1 for every image."""
    bad = 0
    checked = 0
    for arm_file in sorted(glob.glob(os.path.join(arm_dir, "*.jsonl"))):
        tag = Path(arm_file).stem                      # VARIANT__MODEL
        variant, _, model = tag.partition("__")
        ref_file = os.path.join(x86_dir, model + ".jsonl")
        if not os.path.exists(ref_file):
            print(f"  [{variant}] {model}: no x86 reference")
            bad += 1
            continue
        ref, arm = _load_jsonl(ref_file), _load_jsonl(arm_file)
        if not arm:
            print(f"  [{variant}] {model}: no predictions from the emulated Pi")
            bad += 1
            continue
        same = [k for k in ref if k in arm and ref[k]["label"] == arm[k]["label"]]
        missing = [k for k in ref if k not in arm]
        dscore = max((abs(float(ref[k]["score"]) - float(arm[k]["score"])) for k in ref if k in arm), default=float("nan"))
        ok = len(same) == len(ref) and not missing
        checked += 1
        bad += not ok
        print(f"  {'OK ' if ok else 'BAD'} [{variant}] {model}: top-1 x86 == aarch64 for {len(same)}/{len(ref)} images, "
              f"max |score diff| {dscore:.2e}")
        for k in sorted(ref):
            a = arm.get(k)
            print(f"      {k:<24} x86 {ref[k]['label']:>4} ({float(ref[k]['score']):.4f})   "
                  f"aarch64 {a['label'] if a else '-':>4} ({float(a['score']) if a else float('nan'):.4f})"
                  f"{'' if a and a['label'] == ref[k]['label'] else '   <-- differs'}")
    if not checked:
        print("  no emulated predictions to compare")
        return 1
    return 1 if bad else 0


def cmd_wheel_requires(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:"):
                print(line)
    return 0


def cmd_test_fixtures(repo: str, out: str) -> int:
    """Best effort: tests/*_fixtures.py cache the models they build with TensorFlow under
    $EDGEDEPLOY_TEST_CACHE/<hash of their code>; the Pi has no TF, so build them here and
    hand over copies (the hash is computed from the same code on both sides)."""
    import importlib
    import shutil
    import warnings

    tests = Path(repo, "tests")
    sys.path[:0] = [str(tests), repo]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    os.makedirs(out, exist_ok=True)
    built = []
    for module, func in (("edge_fixtures", "ensure_edge_models"), ("bench_fixtures", "bench_export_dir")):
        if not (tests / f"{module}.py").is_file():
            continue
        try:
            src = Path(getattr(importlib.import_module(module), func)())
        except Exception as e:  # noqa: BLE001 - someone else's moving target: say so and go on
            print(f"  tests/{module}.py:{func}() failed: {type(e).__name__}: {str(e)[-300:]}", file=sys.stderr)
            continue
        dst = Path(out, src.name)
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        built.append(f"{module}.{func} -> {src.name}")
    print("test fixtures: " + ("; ".join(built) if built else "none (the TF-needing fixture tests will skip on the Pi)"))
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "mirrors":
        return cmd_mirrors(args[0] if args else "bookworm")
    if cmd == "images":
        return cmd_images(args[0], int(args[1]) if len(args) > 1 else 10)
    if cmd == "compare":
        return cmd_compare(args[0], args[1])
    if cmd == "test-fixtures":
        return cmd_test_fixtures(args[0], args[1])
    if cmd == "nchw":
        return cmd_nchw(args[0], args[1], args[2], int(args[3]) if len(args) > 3 else 12)
    if cmd == "wheel-requires":
        return cmd_wheel_requires(args[0])
    print(f"unknown sub-command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
