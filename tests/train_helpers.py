"""Helpers for the train tests (tests/train/) and the few others that train a tiny model."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Real photos beside the checkout (../shared/data), never copied into the repo.
SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared/data/cats_vs_dogs_small"
PHOTOS_REASON = f"real photos not found at {SHARED_PHOTOS} (they sit beside the checkout in ../shared/data)"

COLORS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def color_image(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30), seed: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 image of one colour with noise: an easy class to learn."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = np.array(rgb, dtype=np.int16)[None, None, :]
    noise = rng.integers(-30, 31, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str = "PNG", **kw: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_image_folder(root: Path, classes: tuple[str, ...] = ("red", "blue"), per_class: int = 10,
                      sizes: tuple[tuple[int, int], ...] = ((40, 30), (36, 44))) -> Path:
    """``root/<class>/img_NN.{png,jpg}``: solid-colour classes, mixed sizes and formats."""
    for c in classes:
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = color_image(COLORS[c], sizes[i % len(sizes)], seed=i)
            fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
            (d / f"img_{i:02d}.{ext}").write_bytes(encode(arr, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    return root


def tiny_config(tmp_path: Path, **kw: Any) -> Any:
    """A TrainConfig that trains in seconds: digits at 32x32, 1 epoch."""
    from edgedeploy.train.config import TrainConfig

    base = dict(model="small_cnn", dataset="digits", image_size=32, epochs=1, batch_size=64,
                output=str(tmp_path / "run"), patience=0, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m train`` (= train-model) from the checkout."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgedeploy.train", *args], cwd=str(ROOT), env=e, capture_output=True,
                          text=True, timeout=timeout)
