"""What the user typed after the model, turned into image paths: files, folders (recursive) and globs.

Hidden files and folders are skipped, and a symlink that leaves a folder is not followed. Standard
library only, so listing inputs costs nothing before the model opens.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["IMAGE_SUFFIXES", "is_image_path", "walk_folder", "expand_inputs"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_path(path: Any) -> bool:
    """True for a file name with an image suffix (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def walk_folder(root: Path) -> list[Path]:
    """Every image under ``root``, sorted, without hidden entries or symlinks that leave ``root``."""
    base = root.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or not is_image_path(path):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                continue  # a link out of the folder is not followed
            found.append(path)
    return found


def expand_inputs(items: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders and globs -> image paths in order, plus (input, reason) problems.

    Args:
        items: what the user typed after the model.

    Returns:
        ``(paths, problems)``: unique paths in the order given, and the inputs
        that named nothing usable with the reason why.
    """
    paths: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = walk_folder(p)
            if not found:
                problems.append((item, "folder holds no images"))
        elif p.exists():
            found = [p]
        elif glob.has_magic(item):
            found = []
            for m in sorted(glob.glob(item, recursive=True)):
                found.extend(walk_folder(Path(m)) if Path(m).is_dir() else [Path(m)])
            if not found:
                problems.append((item, "no file matches this pattern"))
        else:
            found = []
            problems.append((item, "not found"))
        paths.extend(found)
    seen: set[Path] = set()
    unique = [p for p in paths if not (p in seen or seen.add(p))]
    return unique, problems
