"""The peers of ``edge-infer DIR``: the loops a user writes, timed as whole processes.

benchmarks/throughput.py runs each of these as ``python LOOP.py MODEL FOLDER``
(start-up, imports and the model load included, as for ``edge-infer``), and
measures how far each one's pixels are from what training saw.

- ``opencv``: ``cv2.imread`` -> ``cv2.cvtColor`` BGR->RGB -> ``cv2.resize``
  (INTER_LINEAR) -> normalize/quantize -> ``interpreter.invoke``, LiteRT with 2
  threads, one Python thread;
- ``pillow``: the same loop with ``Image.open(...).convert("RGB").resize(...,
  BILINEAR)``.

Each prints one line per image (path and top-1 index), as a user's loop would.
The normalization line is there only when the model does not normalize in
its own graph (the manifest says which).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

HEAD = '''import pathlib, sys
{imports}
import numpy as np
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path=sys.argv[1], num_threads={threads})
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
_, h, w, _ = inp["shape"]
scale, zero = inp["quantization"]
limits = np.iinfo(inp["dtype"]) if scale else None
for path in sorted(pathlib.Path(sys.argv[2]).rglob("*.jpg")):
'''
DECODE = {
    "opencv": ("import cv2",
               "    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)\n"
               "    x = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)\n"),
    "pillow": ("from PIL import Image",
               "    image = Image.open(path).convert(\"RGB\").resize((w, h), Image.BILINEAR)\n"
               "    x = np.asarray(image, dtype=np.float32)\n"),
}
NORMALIZE = "    x = (x - np.float32({mean})) / np.float32({std})\n"
TAIL = '''    if limits is not None:
        x = np.clip(np.round(x / scale + zero), limits.min, limits.max)
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"])[None])
    interpreter.invoke()
    probs = interpreter.get_tensor(out["index"])[0]
    print(path, int(probs.argmax()))
'''
NAMES = {"opencv": "OpenCV loop", "pillow": "Pillow loop"}


def loop_source(kind: str, normalization: Any = None, threads: int = 2) -> str:
    """The Python source of one peer loop (``kind``: "opencv" or "pillow")."""
    imports, decode = DECODE[kind]
    body = HEAD.format(imports=imports, threads=threads) + decode
    if normalization is not None and not normalization.in_graph:
        body += NORMALIZE.format(mean=list(normalization.mean), std=list(normalization.std))
    return body + TAIL


def write_loops(dest: Path, normalization: Any, threads: int = 2) -> dict[str, Path]:
    """Write every loop into ``dest``: {kind: path}."""
    out = {}
    for kind in DECODE:
        path = dest / f"{kind}_loop.py"
        path.write_text(loop_source(kind, normalization, threads))
        out[kind] = path
    return out


def available(kind: str) -> bool:
    """Whether this machine can run the loop (OpenCV is not in the edge extra)."""
    import importlib.util

    module = {"opencv": "cv2", "pillow": "PIL"}[kind]
    return importlib.util.find_spec(module) is not None and importlib.util.find_spec("ai_edge_litert") is not None


def peer_pixels(kind: str, path: Path, height: int, width: int) -> Any:
    """The float32 (H, W, 3) pixels the loop hands the model (before normalization), for the parity column."""
    import numpy as np

    if kind == "opencv":
        import cv2

        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32)


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgedeploy-peers-", dir=os.environ.get("TMPDIR")))
