"""The test models, made by the real commands: ONE cached chain for every suite.

``test_models()`` returns a folder built once by what a user runs:

1. ``train-model --model small_cnn --dataset digits --image-size 32 --epochs 8``
   -> ``run/`` (model.keras, manifest.json, metrics ...);
2. ``export-model run --format tflite,onnx --quantize none,int8``
   -> ``model_float32.tflite``, ``model_int8.tflite`` (uint8 I/O),
   ``model_float32.onnx``, ``model_int8.onnx``, each with its manifest
   embedded and its sidecar ``model_<mode>.<ext>.json``, and ``export_report.*``;
3. odd models, made by mutating those exports (no converter involved):
   ``model_nomanifest.tflite`` (the embedded manifest stripped),
   ``model_fixed1.tflite`` (batch fixed at 1: shape and shape_signature rewritten),
   ``model_fixed3.onnx`` (batch dimension fixed at 3);
   corrupt and truncated files are made per test from these bytes;
4. ``reference.npz``: Keras's own probabilities of run/model.keras on the test digits;
5. ``images/``: a dozen test digits as PNG and JPEG, with ``truth.json``;
6. ``bench/``: float32/int8 TFLite and float32 ONNX with their sidecars and
   export_report.json (what the benchmark tests compare);
7. ``fuzz_tiny*``: the ONE hand-made case (tests/edge_fixtures.py names why).

It is cached under ``~/.cache/edgedeploy/test-models/chain-<key>``
(``EDGEDEPLOY_TEST_CACHE`` overrides the parent folder), where the key hashes
the source of train/, export/ and edge_runtime/ and the fixture files, so a
change to any of them rebuilds (``EDGEDEPLOY_TEST_MODELS`` names a prebuilt
chain folder instead; see ``chain_dir`` for a checkout without train/ and
export/, as in the Pi emulation). The build goes to a temporary folder that is
renamed into place at the end, under a file lock, so two pytest processes can
start at once: one builds, the other waits and reuses it.

If the chain cannot be built, every test that needs it FAILS with the
command and the tail of its stderr. There is no fallback.
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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SIZE = 32
EPOCHS = 8  # ~98% on the test digits; each epoch after the first takes about half a second
EXPORTS = ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "model_int8.onnx")
BENCH_VARIANTS = ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx")
ODD = ("model_nomanifest.tflite", "model_fixed1.tflite", "model_fixed3.onnx")
FUZZ = ("fuzz_tiny.tflite", "fuzz_tiny_int8.tflite", "fuzz_tiny.onnx")
COMPLETE = "COMPLETE"  # written last, inside the temporary folder, before the rename
_SOURCES = ("edgedeploy", "train", "export", "edge_runtime")
_FIXTURE_FILES = ("model_fixtures.py", "edge_fixtures.py")
_failure: str | None = None


class BuildError(Exception):
    """A step of the chain failed; the message names the command and its stderr tail."""


def cache_base() -> Path:
    return Path(os.environ.get("EDGEDEPLOY_TEST_CACHE") or Path.home() / ".cache" / "edgedeploy" / "test-models")


@functools.lru_cache(maxsize=None)
def cache_key() -> str:
    """sha256 of the .py sources of train/, export/, edge_runtime/ and the fixture files (once per process)."""
    h = hashlib.sha256()
    files = [p for d in _SOURCES for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts]
    files += [TESTS / f for f in _FIXTURE_FILES]
    for p in sorted(files):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _can_build_here() -> bool:
    return all((ROOT / d).is_dir() for d in _SOURCES)


def chain_dir() -> Path:
    """Where the chain for this checkout lives.

    ``EDGEDEPLOY_TEST_MODELS`` names a prebuilt chain folder outright. A checkout
    without train/ or export/ (the Pi emulation copies only tests/ and
    benchmarks/ and installs the wheel) cannot build or hash them, so it takes
    the one complete chain found in the cache, which the host built from the
    same sources (scripts/pi_emulation_host.py); more than one is an error.
    """
    if os.environ.get("EDGEDEPLOY_TEST_MODELS"):
        return Path(os.environ["EDGEDEPLOY_TEST_MODELS"])
    if not _can_build_here():
        found = sorted(p for p in cache_base().glob("chain-*") if _is_complete(p))
        if len(found) == 1:
            return found[0]
        raise BuildError(f"this checkout has no {' or '.join(d for d in _SOURCES if not (ROOT / d).is_dir())}/ to build "
                         f"the test models, and {cache_base()} holds {len(found)} complete chains (expected 1); "
                         "build them where train/ and export/ are, or set EDGEDEPLOY_TEST_MODELS")
    return cache_base() / f"chain-{cache_key()}"


# -- the steps ---------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _run(*args: str, what: str, timeout: int = 900) -> None:
    cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} exited {proc.returncode}: {' '.join(cmd)}\n{tail}")


def _train(work: Path) -> Path:
    run = work / "run"
    _run("-m", "edgedeploy.train", "--model", "small_cnn", "--dataset", "digits", "--image-size", str(SIZE),
         "--epochs", str(EPOCHS), "--seed", "0", "--patience", "0", "--output", str(run), what="train-model")
    return run


def _export(run: Path, out: Path) -> None:
    _run("-m", "edgedeploy.export", str(run), "--format", "tflite,onnx", "--quantize", "none,int8", "--output", str(out),
         what="export-model")
    missing = [f for f in EXPORTS if not (out / f).is_file() or not (out / f"{f}.json").is_file()]
    if missing:
        raise BuildError(f"export-model exited 0 but did not write {', '.join(missing)}")


REFERENCE = '''
import sys, numpy as np, keras, tensorflow as tf
from edgedeploy.runtime.datasets import load_digits
model = keras.models.load_model(sys.argv[1])
ds = load_digits("test")
x = tf.image.resize(ds.images.astype("float32"), (%d, %d), "bilinear").numpy()
np.savez(sys.argv[2], probs=model.predict(x, verbose=0), labels=ds.labels)
''' % (SIZE, SIZE)


def _reference(run: Path, out: Path) -> None:
    _run("-c", REFERENCE, str(run / "model.keras"), str(out / "reference.npz"), what="Keras reference probabilities")


# -- odd models: mutations of the real exports ------------------------------------------
def _tflite_name(entry) -> str:
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name


def strip_tflite_manifest(src: Path, dst: Path) -> Path:
    """A copy of a .tflite export as a converter writes it: no manifest, no standard metadata, no packed labels."""
    from edgedeploy.runtime.formats import get_format

    dst.write_bytes(get_format("tflite").strip_manifest(src.read_bytes()))
    return dst


def fix_tflite_batch(src: Path, dst: Path, batch: int) -> Path:
    """A copy of a dynamic-batch .tflite export with the batch fixed (shape and shape_signature)."""
    import numpy as np
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(src))
    for sg in model.subgraphs:
        for t in sg.tensors:
            sig = t.shapeSignature
            if sig is not None and len(sig) and int(sig[0]) == -1:
                t.shapeSignature = np.array([batch, *sig[1:]], np.int32)
                t.shape = np.array([batch, *t.shape[1:]], np.int32)
    fbu.write_model(model, str(dst))
    return dst


def fix_onnx_batch(src: Path, dst: Path, batch: int) -> Path:
    """A copy of a dynamic-batch .onnx export with the graph's batch dimension fixed."""
    import onnx

    proto = onnx.load(str(src))
    for v in [*proto.graph.input, *proto.graph.output]:
        dim = v.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_param")
        dim.dim_value = batch
    onnx.save(proto, str(dst))
    return dst


def _odd_models(d: Path) -> None:
    strip_tflite_manifest(d / "model_float32.tflite", d / "model_nomanifest.tflite")
    fix_tflite_batch(d / "model_float32.tflite", d / "model_fixed1.tflite", 1)  # embedded manifest only
    fix_onnx_batch(d / "model_float32.onnx", d / "model_fixed3.onnx", 3)


def _images(folder: Path) -> None:
    from PIL import Image

    from edgedeploy.runtime.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    ds = load_digits("test")
    truth = {}
    for i, (img, lab) in enumerate(zip(ds.images[:12], ds.labels[:12])):
        name = f"digit{i:02d}_{lab}." + ("png" if i % 2 == 0 else "jpg")
        Image.fromarray(img).resize((40, 40), Image.NEAREST).save(folder / name, quality=95)
        truth[name] = int(lab)
    (folder / "truth.json").write_text(json.dumps(truth))


def _bench(d: Path) -> None:
    bench = d / "bench"
    bench.mkdir()
    for name in BENCH_VARIANTS:
        for f in (name, f"{name}.json"):
            shutil.copy2(d / f, bench / f)
    shutil.copy2(d / "export_report.json", bench / "export_report.json")


def build(dest: Path) -> Path:
    """Run the whole chain into ``dest`` (an empty folder). Raises BuildError."""
    run = _train(dest)
    _export(run, dest)
    _reference(run, dest)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)  # --resume state: not needed by any test (5 MB)
    _odd_models(dest)
    _run(str(TESTS / "edge_fixtures.py"), "--fuzz-tiny", str(dest), what="the hand-made fuzz seeds (tests/edge_fixtures.py)")
    _images(dest / "images")
    _bench(dest)
    (dest / COMPLETE).write_text(json.dumps({"key": cache_key(), "epochs": EPOCHS, "size": SIZE}))
    return dest


def _is_complete(d: Path) -> bool:
    return (d / COMPLETE).is_file()


def build_cached() -> Path:
    final = chain_dir()
    if _is_complete(final):
        return final
    base = final.parent
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{final.name}.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest waits here, then finds it built
        except ImportError:  # pragma: no cover - not POSIX: the rename below still keeps it whole
            pass
        if _is_complete(final):
            return final
        work = Path(tempfile.mkdtemp(dir=base, prefix=f".{final.name}-build-"))
        try:
            build(work)
            if final.exists():  # an incomplete leftover
                shutil.rmtree(final)
            os.replace(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(base, keep=final)
    return final


def _prune(base: Path, keep: Path, max_age_days: float = 14) -> None:
    """Remove chains built more than ``max_age_days`` ago (older sources; ~3 MB each)."""
    import time

    cutoff = time.time() - max_age_days * 86400
    for d in base.glob("chain-*"):
        try:
            if d != keep and d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)
                (base / f".{d.name}.lock").unlink(missing_ok=True)
        except OSError:
            pass


def test_models() -> Path:
    """The chain folder (see the module docstring); the calling test fails if it cannot be built."""
    global _failure
    if _failure is None:
        try:
            final = chain_dir()
            if _is_complete(final):
                return final
            if os.environ.get("EDGEDEPLOY_TEST_MODELS"):
                raise BuildError(f"EDGEDEPLOY_TEST_MODELS={final} is not a complete chain folder (no {COMPLETE} file)")
            return build_cached()
        except BuildError as exc:
            _failure = f"the test models could not be built with the real commands: {exc}"
        except subprocess.TimeoutExpired as exc:
            _failure = f"the test models could not be built: {' '.join(map(str, exc.cmd))} timed out after {exc.timeout}s"
    pytest.fail(_failure, pytrace=False)


test_models.__test__ = False  # not a test, whatever its name says


def bench_dir() -> Path:
    """The benchmark tests' export folder: float32/int8 TFLite and float32 ONNX, straight from export-model."""
    return test_models() / "bench"


if __name__ == "__main__":  # python tests/model_fixtures.py: build (or find) the chain and print where
    print(build_cached())
