"""Fuzzing support: byte mutators and a crash-proof worker process.

LiteRT and ONNX Runtime are C++; a malformed file can kill the process with
a segfault that no ``try`` catches. So fuzz cases never run in the caller's
process: ``FuzzWorker`` starts ``python -m edge_runtime.fuzzing`` and sends it
cases over a pipe; the worker feeds each one to ``ImageClassifier`` and
answers with the outcome. If the worker dies (a signal) or stops answering,
that case is recorded as ``crash`` or ``hang``, the worker is restarted and
the run continues. The only acceptable outcomes are ``ok`` (a prediction) and
``error`` (an ``EdgeDeployError``); ``unexpected`` (any other exception),
``crash`` and ``hang`` are bugs.

Mutations are plain data, ``(kind, where, arg)`` with ``where`` in [0, 1)
as a fraction of the length, so hypothesis can generate and shrink them
(tests/test_fuzz_*.py) and a seeded ``random.Random`` can generate them with
no extra dependency on a Pi (benchmarks/fuzz.py).
"""
from __future__ import annotations

import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

KINDS = ("flip", "set", "int32", "truncate", "insert", "delete", "copy")
ACCEPTABLE = ("ok", "error")
# Values that break offset/length/count/index fields when written over them.
INTERESTING32 = (0, 1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                 0xFFFFFFFE, 0x10000, 0x40000000)
Mutation = tuple[str, float, int]


def apply_mutations(data: bytes, mutations: Sequence[Mutation]) -> bytes:
    """Apply mutations in order; every mutation is valid on any input.

    Args:
        data: the original bytes.
        mutations: ``(kind, where, arg)`` triples; kind is one of ``KINDS``,
            ``where`` a fraction of the current length, ``arg`` an integer
            whose meaning depends on the kind (bit, byte, value index, length).

    Returns:
        The mutated bytes.
    """
    buf = bytearray(data)
    for kind, where, arg in mutations:
        n = len(buf)
        pos = min(n - 1, int(where * n)) if n else 0
        arg = abs(int(arg))
        if kind == "flip" and n:
            buf[pos] ^= 1 << (arg % 8)
        elif kind == "set" and n:
            buf[pos] = arg % 256
        elif kind == "int32" and n >= 4:
            pos = min(pos - pos % 4, n - 4)
            struct.pack_into("<I", buf, pos, INTERESTING32[arg % len(INTERESTING32)])
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = bytes(((arg * 31 + i) % 256 for i in range(1 + arg % 64)))
        elif kind == "delete" and n:
            del buf[pos:pos + 1 + arg % 256]
        elif kind == "copy" and n:
            src = arg % n
            chunk = buf[src:src + 4 + arg % 60]
            buf[pos:pos + len(chunk)] = chunk
    return bytes(buf)


def random_mutations(rng: random.Random, max_count: int = 6) -> list[Mutation]:
    """A random mutation list (what hypothesis generates in the tests)."""
    return [(rng.choice(KINDS), rng.random(), rng.randrange(1 << 16)) for _ in range(rng.randint(1, max_count))]


def seed_images() -> dict[str, bytes]:
    """Small valid images in many formats and modes: the seeds the image fuzzers mutate.

    Returns:
        file name -> encoded bytes (PNG, JPEG incl. progressive, CMYK and
        EXIF-rotated, grayscale, RGBA, palette, 16-bit PNG, GIF, BMP, WebP, TIFF).
    """
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}

    def save(name: str, img, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("rgb.png", rgb, "PNG")
    save("rgb.jpg", rgb, "JPEG", quality=90)
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    save("exif_rotated.jpg", rgb, "JPEG", exif=exif.tobytes())
    save("gray.png", rgb.convert("L"), "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("palette.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG")
    save("gray16.png", Image.fromarray((rng.integers(0, 65536, (12, 16))).astype(np.uint16)), "PNG")
    save("anim.gif", rgb.convert("P"), "GIF", save_all=True, append_images=[rgb.convert("P").rotate(90)])
    save("rgb.bmp", rgb, "BMP")
    save("rgb.webp", rgb, "WEBP")
    save("rgb.tiff", rgb, "TIFF", compression="tiff_lzw")
    return out


@dataclass
class CaseResult:
    """What one fuzz case did."""

    outcome: str  # ok | error | unexpected | crash | hang
    detail: str = ""
    seconds: float = 0.0

    @property
    def acceptable(self) -> bool:
        return self.outcome in ACCEPTABLE


class FuzzWorker:
    """A subprocess that runs fuzz cases, restarted whenever a case kills it.

    Args:
        model: the model used for image cases (a valid model file of any format).
        timeout: seconds a case may take before it counts as a hang.
        max_pixels: the pixel cap for decoded images.
        threads: runtime threads inside the worker.
    """

    def __init__(self, model: str | os.PathLike, timeout: float = 20.0, max_pixels: int = 4_000_000, threads: int = 1):
        self.model, self.timeout, self.max_pixels, self.threads = str(model), timeout, max_pixels, threads
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def _start(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "edgedeploy.bench.fuzzing", self.model, str(self.max_pixels), str(self.threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> "FuzzWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, kind: str, data: bytes, suffix: str = "", probe: str = "never") -> CaseResult:
        """Run one case in the worker.

        Args:
            kind: "model" (``data`` is a model file named ``*suffix``) or "image".
            data: the (mutated) bytes.
            suffix: the model file suffix (``edge_runtime.formats``), which names the file's format.
            probe: the probe mode for model cases. "never" tests the Python
                verifiers alone (a crash here is a verifier gap); "always"
                tests the full default guard; "raw" skips edgedeploy and
                hands the file straight to the runtime (the baseline).

        Returns:
            The ``CaseResult``.
        """
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.restarts += 1
            self._start()
        header = json.dumps({"kind": kind, "suffix": suffix, "len": len(data), "probe": probe}).encode() + b"\n"
        t0 = time.monotonic()
        try:
            self.proc.stdin.write(header + data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died(t0)
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            return CaseResult("hang", f"no answer within {self.timeout} s", time.monotonic() - t0)
        line = self.proc.stdout.readline()
        if not line:
            return self._died(t0)
        reply = json.loads(line)
        return CaseResult(reply["outcome"], reply.get("detail", ""), time.monotonic() - t0)

    def _died(self, t0: float) -> CaseResult:
        code = self.proc.wait()
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return CaseResult("crash", f"worker died with {how}", time.monotonic() - t0)


# -- the worker side ---------------------------------------------------------------
def _case(kind: str, suffix: str, data: bytes, clf, image, max_pixels: int, threads: int, workdir: str,
          probe: str = "never") -> tuple[str, str]:
    from edgedeploy.core.errors import EdgeDeployError
    from edgedeploy.runtime import ImageClassifier

    try:
        if kind == "image":
            pred = clf.predict(data)
        else:
            path = os.path.join(workdir, "case" + suffix)
            with open(path, "wb") as f:
                f.write(data)
            if probe == "raw":
                return _raw_case(path)
            model = ImageClassifier(path, threads=threads, max_pixels=max_pixels, probe=probe)
            pred = model.predict(image)
        return "ok", pred.label
    except EdgeDeployError as exc:
        return "error", f"{type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # a bug: anything else must become EdgeDeployError
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        return "unexpected", f"{type(exc).__name__}: {exc}"[:300] + f" (at {Path(where.filename).name}:{where.lineno})"


def _raw_case(path: str) -> tuple[str, str]:
    """The baseline: hand the file straight to the native runtime, no edgedeploy checks.

    Measures what the verifiers and the probe protect against: the backend
    ``--backend auto`` picks for this file's format is opened unverified and
    unprobed (``Backend.open_unchecked``). Any Python exception counts as
    "error" here (the runtime refused the file).
    """
    import numpy as np

    from edgedeploy.runtime.backends import resolve_backend

    try:
        backend = resolve_backend(path).open_unchecked(path)
        backend.run(np.zeros(tuple(d if d > 0 else 1 for d in backend.input.shape), backend.input.dtype))
        return "ok", "raw"
    except Exception as exc:  # noqa: BLE001  the runtime said no: fine for a baseline
        return "error", f"{type(exc).__name__}"


def worker_main(argv: Sequence[str]) -> int:
    """Serve cases from stdin until it closes (see ``FuzzWorker``)."""
    import warnings

    import numpy as np

    from edgedeploy.runtime import ImageClassifier

    warnings.simplefilter("ignore")
    model, max_pixels, threads = argv[0], int(argv[1]), int(argv[2])
    clf = ImageClassifier(model, threads=threads, max_pixels=max_pixels, probe="never")
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    # Replies go to a private copy of fd 1; whatever native code prints on
    # stdout is sent to /dev/null so it cannot corrupt the protocol.
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    with tempfile.TemporaryDirectory(prefix="edgedeploy-fuzz-") as workdir:
        while header := stdin.readline():
            h = json.loads(header)
            data = stdin.read(h["len"])
            outcome, detail = _case(h["kind"], h["suffix"], data, clf, image, max_pixels, threads, workdir,
                                    h.get("probe", "never"))
            stdout.write(json.dumps({"outcome": outcome, "detail": detail}).encode() + b"\n")
            stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
