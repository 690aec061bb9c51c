"""Tiny export folders and helpers for the benchmarks tests (tests/test_bench_*.py).

``bench_export_dir()`` is an export folder for a tiny CNN (functional Keras,
Rescaling(1/255) in the graph, Conv 8/16 + Dense 32/10, trained a few epochs
on the embedded digits at 32x32):

  model_float32.tflite   float32
  model_int8.tflite      full int8, uint8 I/O
  model_float32.onnx     float32

each with its manifest embedded (``macs`` set) and a sidecar JSON. Built once
and cached under ~/.cache/edgedeploy/test-models (EDGEDEPLOY_TEST_CACHE),
keyed by the content of the fixture files:

- with ``export-model`` (export/cli.py) when it and TensorFlow are there: a
  run folder from tests/export_fixtures.py, exported as the README does;
- otherwise from tests/edge_fixtures.py's cached models, with ``macs``
  written into the files by ai_edge_litert's flatbuffer tools and a few lines
  of protobuf (no TensorFlow or onnx needed for that step).

``run_script`` runs a benchmark script the way a user does
(``python benchmarks/<name>.py``) and returns the CompletedProcess.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BENCH = ROOT / "benchmarks"
VARIANTS = ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx")
EMBED_KEY = "edgedeploy.manifest"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The edge_fixtures CNN (tests/edge_fixtures.py::_train) at 32x32x3, per image, used
# when the folder is built from edge_fixtures (export-model counts its own):
#   Conv2D 8 (3x3, same) on 32x32x3:  32*32*8 * 3*3*3  = 221,184
#   Conv2D 16 (3x3, same) on 16x16x8: 16*16*16 * 3*3*8 = 294,912
#   Dense 8*8*16 -> 32:                1024*32          =  32,768
#   Dense 32 -> 10:                    32*10            =     320
EDGE_FIXTURE_MACS = 221_184 + 294_912 + 32_768 + 320


def sidecar_manifest(model: Path) -> dict:
    """The sidecar manifest JSON beside a model (model.tflite.json, else model.json)."""
    for p in (model.with_name(model.name + ".json"), model.with_suffix(".json")):
        if p.is_file():
            return json.loads(p.read_text())
    raise FileNotFoundError(f"no sidecar manifest beside {model}")


def fixture_macs() -> int:
    """The MACs the fixture's manifests carry (the same model in every variant)."""
    values = {sidecar_manifest(bench_export_dir() / v)["macs"] for v in VARIANTS}
    assert len(values) == 1 and isinstance(next(iter(values)), int) and next(iter(values)) > 0, values
    return values.pop()


def _edge_fixtures():
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import edge_fixtures

    return edge_fixtures


def edge_models_dir() -> Path:
    """edge_fixtures' cached model folder (built with TensorFlow the first time), or skip."""
    ef = _edge_fixtures()
    cached = ef.cache_dir()
    if all((cached / f).is_file() for f in ef.FILES):
        return cached
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pytest.skip("the tiny fixture models are not cached and TensorFlow is not installed to build them")
    return ef.ensure_edge_models()


def _cache_key() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in ("edge_fixtures.py", "export_fixtures.py"):
        if (TESTS / f).is_file():
            h.update((TESTS / f).read_bytes())
    return h.hexdigest()[:12]


# -- rewriting the manifest inside the files (no TensorFlow, no onnx) --------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field, wire, start, end, payload) for each top-level protobuf field."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        payload = b""
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            payload, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, start, pos, payload


def set_onnx_manifest(path: Path, manifest_json: str) -> None:
    """Replace the ``edgedeploy.manifest`` entry of an ONNX file's metadata_props (field 14)."""
    buf = path.read_bytes()
    kept = bytearray()
    for field, wire, start, end, payload in _fields(buf):
        if field == 14 and wire == 2:
            entry = {f: p for f, w, _, _, p in _fields(payload) if w == 2}
            if entry.get(1) == EMBED_KEY.encode():
                continue
        kept += buf[start:end]
    key, value = EMBED_KEY.encode(), manifest_json.encode()
    entry = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(value)) + value
    kept += b"\x72" + _varint(len(entry)) + entry
    path.write_bytes(bytes(kept))


def set_tflite_manifest(path: Path, manifest_json: str) -> None:
    """Replace (or add) the ``edgedeploy.manifest`` metadata entry of a TFLite file."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(path))
    data = np.frombuffer(manifest_json.encode(), np.uint8)
    for meta in model.metadata or []:
        name = meta.name.decode() if isinstance(meta.name, bytes) else meta.name
        if name == EMBED_KEY:
            model.buffers[meta.buffer].data = data
            break
    else:
        buf = schema.BufferT()
        buf.data = data
        model.buffers.append(buf)
        meta = schema.MetadataT()
        meta.name = EMBED_KEY
        meta.buffer = len(model.buffers) - 1
        model.metadata = (model.metadata or []) + [meta]
    fbu.write_model(model, str(path))


def _build(dest: Path) -> None:
    src = edge_models_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in VARIANTS:
        shutil.copy(src / name, dest / name)
        sidecar = (src / name).with_suffix(".json")
        manifest = json.loads(sidecar.read_text())
        manifest["macs"] = EDGE_FIXTURE_MACS
        text = json.dumps(manifest, indent=2)
        if name.endswith(".tflite"):
            set_tflite_manifest(dest / name, text)
        else:
            set_onnx_manifest(dest / name, text)
        (dest / name).with_suffix(".json").write_text(text)
    (dest / "export_report.json").write_text(json.dumps({"note": "test fixture", "variants": list(VARIANTS)}))


def _build_with_export_cli(dest: Path) -> None:
    """The real thing: a tiny run folder (tests/export_fixtures.py) through ``export-model``."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import export_fixtures

    run = export_fixtures.train_tiny(dest.parent / f"{dest.name}-run", epochs=4)
    try:
        for fmt, modes in (("tflite", "none,int8"), ("onnx", "none")):
            proc = export_fixtures.run_cli(str(run), "--format", fmt, "--quantize", modes, "--output", str(dest), "--force")
            if proc.returncode != 0:
                raise RuntimeError(f"export-model --format {fmt} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _export_cli_available() -> bool:
    import importlib.util

    return (ROOT / "export" / "cli.py").is_file() and all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tf2onnx"))


@functools.lru_cache(maxsize=None)
def bench_export_dir() -> Path:
    """The cached export folder (see the module docstring)."""
    base = Path(os.environ.get("EDGEDEPLOY_TEST_CACHE", Path.home() / ".cache" / "edgedeploy" / "test-models"))
    for kind in ("export", "edge"):
        final = base / f"bench-{kind}-{_cache_key()}"
        if all((final / v).is_file() for v in VARIANTS):
            return final
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=base, prefix=".bench-build-"))
    kind = "edge"
    try:
        if _export_cli_available():
            try:
                _build_with_export_cli(work)
                kind = "export"
            except Exception as exc:  # export/ is someone else's moving target: say so, and go on
                warnings.warn(f"building the benchmark fixtures with export-model failed ({exc}); "
                              "using tests/edge_fixtures.py's models instead")
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
        if kind == "edge":
            _build(work)
        final = base / f"bench-{kind}-{_cache_key()}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def copy_export_dir(dest: Path) -> Path:
    """A private copy of the export folder (tests that write next to the models)."""
    shutil.copytree(bench_export_dir(), dest)
    return dest


# -- running the scripts ------------------------------------------------------------
def script_env(extra_path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_script(name: str, *args, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/<name>.py ARGS`` as a user runs it; text output captured."""
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or script_env(), cwd=cwd or ROOT, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def is_png(path: Path) -> bool:
    """The PNG signature, and Pillow can open and decode it."""
    from PIL import Image

    if path.read_bytes()[:8] != PNG_SIGNATURE:
        return False
    with Image.open(path) as im:
        im.load()
        return im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50


@functools.lru_cache(maxsize=None)
def compare_run() -> tuple[Path, str, str]:
    """One ``compare.py --quick`` over the fixture folder, shared by the tests (report folder, stdout, stderr)."""
    out = Path(tempfile.mkdtemp(prefix="edgedeploy-bench-compare-")) / "report"
    proc = run_script("compare", bench_export_dir(), "--dataset", "digits", "--out", out, "--quick", "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout, proc.stderr


def blocker_dir(tmp: Path) -> tuple[Path, Path]:
    """A PYTHONPATH folder where importing tensorflow/keras fails and every process records its sys.modules.

    Its ``sitecustomize`` runs at the start of every Python process (the
    scripts and their latency subprocesses) and, at exit, writes the forbidden
    modules it finds loaded into ``marks/<pid>.json``.
    """
    d = tmp / "blocked"
    marks = tmp / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    for mod in ("tensorflow", "keras", "tf_keras"):
        (d / mod).mkdir(parents=True, exist_ok=True)
        (d / mod / "__init__.py").write_text(f"raise ImportError('{mod} is blocked in this test: the edge side must not import it')\n")
    (d / "sitecustomize.py").write_text(
        "import atexit, json, os, sys\n"
        f"_MARKS = {str(marks)!r}\n"
        "def _check():\n"
        "    bad = sorted(m for m in ('tensorflow', 'keras', 'train', 'export', 'tf2onnx', 'onnx', 'sklearn') if m in sys.modules)\n"
        "    with open(os.path.join(_MARKS, f'{os.getpid()}.json'), 'w') as f:\n"
        "        json.dump({'argv': sys.argv, 'forbidden': bad}, f)\n"
        "atexit.register(_check)\n")
    return d, marks
