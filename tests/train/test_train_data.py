"""train/data and train/preprocess_tf: folders (bad files, symlinks), splits, load_split,
TFDS under mock_data, and training-side preprocessing == device-side preprocessing."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime.manifest import Manifest, Normalization
from edgedeploy.runtime.preprocess import load_image, preprocess
from edgedeploy.train.config import resolve
from edgedeploy.train.data import DATASETS, load_split
from edgedeploy.train.data.folder import scan_folder, split_files

from train_helpers import PHOTOS_REASON, SHARED_PHOTOS, color_image, encode, make_image_folder, tiny_config

pytestmark = pytest.mark.tf


def _manifests(size=32):
    return {
        "small_cnn": Manifest(labels=["a", "b"], input_height=size, input_width=size),
        "vgg16": Manifest(labels=["a", "b"], input_height=size, input_width=size, color_order="BGR",
                          normalization=Normalization(False, [103.939, 116.779, 123.68], [1.0, 1.0, 1.0])),
        "mobilenet_v2": Manifest(labels=["a", "b"], input_height=size, input_width=size,
                                 normalization=Normalization(False, [127.5] * 3, [127.5] * 3)),
    }


# -- image folders ---------------------------------------------------------------
@pytest.fixture()
def messy_folder(tmp_path):
    from PIL import Image

    root = make_image_folder(tmp_path / "data", ("red", "blue"), per_class=6)
    red = root / "red"
    (red / "empty.jpg").write_bytes(b"")
    jpeg = encode(color_image((200, 40, 40), (64, 64)), "JPEG")
    (red / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (red / "notes.jpg").write_text("this is not a picture\n")
    (root / "blue" / "readme.txt").write_text("labels by hand\n")
    (red / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored, not counted
    # Modes that must work: grayscale, RGBA, palette, 16-bit.
    Image.fromarray(np.full((20, 20), 90, np.uint8), "L").save(red / "gray.png")
    Image.fromarray(np.dstack([color_image((200, 40, 40), (20, 20)), np.full((20, 20), 128, np.uint8)]), "RGBA").save(red / "rgba.png")
    Image.fromarray(color_image((200, 40, 40), (20, 20))).convert("P").save(red / "palette.png")
    Image.fromarray(np.full((20, 20), 50000, np.uint16)).save(red / "sixteen.png")
    # Symlinks: one inside the folder (followed), two pointing outside (not followed).
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_bytes(encode(color_image((0, 0, 0), (8, 8))))
    os.symlink(outside / "secret.png", red / "outside.png")
    os.symlink(outside, root / "green")
    os.symlink(red / "img_00.png", root / "blue" / "inside_link.png")
    return root


def test_bad_files_are_skipped_and_counted(messy_folder):
    scan = scan_folder(messy_folder)
    assert scan.classes == ["blue", "red"]
    reasons = {s["path"]: s["reason"] for s in scan.skipped}
    assert reasons["red/empty.jpg"].startswith("empty file")
    assert reasons["red/truncated.jpg"].startswith("corrupt or truncated")
    assert reasons["red/notes.jpg"].startswith("not an image")
    assert reasons["blue/readme.txt"].startswith("not an image")
    assert reasons["red/outside.png"].startswith("symlink outside")
    assert reasons["green"].startswith("symlink outside")
    assert len(scan.skipped) == 6
    assert sorted(scan.files["red"]) == sorted([f"red/img_{i:02d}.{'jpg' if i % 2 else 'png'}" for i in range(6)]
                                               + ["red/gray.png", "red/palette.png", "red/rgba.png", "red/sixteen.png"])
    assert len(scan.files["blue"]) == 7  # 6 + the in-folder symlink
    assert "skipped 6 of 23 files" in scan.summary()
    for rel in ("red/gray.png", "red/rgba.png", "red/palette.png", "red/sixteen.png"):
        assert load_image(messy_folder / rel).shape == (20, 20, 3)


def test_folder_prepare_reports_and_records_skips(messy_folder, tmp_path):
    cfg = resolve(tiny_config(tmp_path, dataset=None, data_dir=str(messy_folder)))
    data = DATASETS.get("folder").prepare(cfg, None)
    assert data.label_names == ["blue", "red"]
    assert sum(data.counts.values()) == 17
    assert len(data.record["skipped"]) == 6 and data.notes and "skipped 6 of 23" in data.notes[0]
    images = [img for img, _ in data.raw("train").as_numpy_iterator()]
    assert images and all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in images)


@pytest.mark.parametrize("layout, match", [
    ({}, "is empty"),
    ({"loose.png": None}, "has no class subfolders"),
    ({"cat/a.png": None}, "only one class folder"),
    ({"cat/a.png": None, "dog/": None}, "class folder .*dog has no readable images"),
    ({"cat/a.png": None, "dog/bad.jpg": b"junk"}, "class folder .*dog has no readable images"),
])
def test_unusable_folders_are_one_line_errors(tmp_path, layout, match):
    root = tmp_path / "d"
    root.mkdir()
    for rel, data in layout.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if data is not None else encode(color_image((1, 2, 3), (8, 8))))
    with pytest.raises(EdgeDeployError, match=match) as e:
        scan_folder(root)
    assert "\n" not in str(e.value)


def test_split_is_stratified_seeded_and_deterministic(tmp_path):
    root = make_image_folder(tmp_path / "d", ("red", "green", "blue"), per_class=10)
    a, b = split_files(scan_folder(root)), split_files(scan_folder(root))
    assert a == b
    assert {s: len(v) for s, v in a.items()} == {"train": 24, "validation": 3, "test": 3}
    for s in ("validation", "test"):
        assert sorted(y for _, y in a[s]) == [0, 1, 2]
    all_files = [f for s in a.values() for f, _ in s]
    assert len(all_files) == len(set(all_files)) == 30


def _fake_run(tmp_path, cfg, data):
    run = tmp_path / "fake_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
    (run / "splits.json").write_text(json.dumps(data.record))
    return run


def test_load_split_folder_gives_raw_images_and_balanced_samples(tmp_path):
    root = make_image_folder(tmp_path / "d", ("red", "blue"), per_class=20)
    cfg = resolve(tiny_config(tmp_path, dataset=None, data_dir=str(root)))
    data = DATASETS.get("folder").prepare(cfg, None)
    run = _fake_run(tmp_path, cfg, data)
    test = load_split(run, "test")
    assert len(test) == data.counts["test"] == 4 and test.label_names == ["blue", "red"]
    assert isinstance(test.images, list)  # mixed sizes stay a list, unresized
    assert {im.shape for im in test.images} <= {(40, 30, 3), (36, 44, 3)}
    rel = [f for f, _ in data.record["splits"]["test"]]
    assert np.array_equal(test.images[0], load_image(root / rel[0]))
    cal = load_split(run, "train", max_samples=10, balanced=True, seed=3)
    assert np.bincount(cal.labels).tolist() == [5, 5]
    with pytest.raises(EdgeDeployError, match="split='dev'"):
        load_split(run, "dev")
    with pytest.raises(EdgeDeployError, match="run folder not found"):
        load_split(tmp_path / "nope", "test")


def test_load_split_digits_matches_edge_runtime(tmp_path):
    from edgedeploy.runtime.datasets import load_digits

    cfg = resolve(tiny_config(tmp_path))
    run = _fake_run(tmp_path, cfg, DATASETS.get("digits").prepare(cfg, None))
    s = load_split(run, "test")
    ref = load_digits("test")
    assert s.images.shape == ref.images.shape == (269, 8, 8, 3)
    assert np.array_equal(s.images, ref.images) and np.array_equal(s.labels, ref.labels)
    cal = load_split(run, "train", max_samples=50, balanced=True)
    assert np.bincount(cal.labels).tolist() == [5] * 10


# -- TFDS under mock_data -------------------------------------------------------------
@pytest.mark.parametrize("name, classes", [("cats_vs_dogs", 2), ("tf_flowers", 5)])
def test_tfds_loaders_under_mock_data(tmp_path, name, classes):
    tfds = pytest.importorskip("tensorflow_datasets")
    from edgedeploy.train.pipeline import build_dataset

    cfg = resolve(tiny_config(tmp_path, dataset=name))
    assert cfg.image_size == 32
    with tfds.testing.mock_data(num_examples=20):
        data = DATASETS.get(name).prepare(cfg, None)
        assert len(data.label_names) == classes
        assert data.counts == {"train": 16, "validation": 2, "test": 2}
        raw = list(data.raw("test").as_numpy_iterator())
        assert len(raw) == 2 and all(img.dtype == np.uint8 and img.shape[2] == 3 for img, _ in raw)
        m = Manifest(labels=data.label_names, input_height=32, input_width=32)
        x, y = next(iter(build_dataset(data.raw("train"), m, 8, training=True, augment=True, num_examples=16)))
        assert x.shape == (8, 32, 32, 3) and y.shape == (8,)
        run = _fake_run(tmp_path, cfg, data)
        s = load_split(run, "test")
        assert len(s) == 2 and all(np.array_equal(a, b) for a, (b, _) in zip(s.images, raw))


def test_tfds_missing_dataset_is_one_line_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(self, *a, **k):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    cfg = resolve(tiny_config(tmp_path, dataset="cats_vs_dogs", data_dir=str(tmp_path / "tfds")))
    with pytest.raises(EdgeDeployError, match=r"could not be downloaded .*--data") as e:
        DATASETS.get("cats_vs_dogs").prepare(cfg, None)
    assert "\n" not in str(e.value)


# -- preprocessing parity --------------------------------------------------------------
@pytest.mark.parametrize("model", ["small_cnn", "vgg16", "mobilenet_v2"])
def test_preprocess_images_matches_device(model):
    from edgedeploy.runtime.preprocess import normalize, resize
    from edgedeploy.train.preprocess_tf import preprocess_images

    m = _manifests(48)[model]
    mixed = [color_image((200, 40, 40), (40, 30), seed=1), color_image((10, 250, 90), (97, 61), seed=2),
             np.full((12, 12), 77, np.uint8)]
    got = preprocess_images(mixed, m)
    want = np.stack([normalize(resize(load_image(im), 48, 48), m) for im in mixed])
    assert got.shape == (3, 48, 48, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    batch = np.stack([color_image((9, 9, 9), (8, 8), seed=i) for i in range(5)])
    np.testing.assert_allclose(preprocess_images(batch, m), np.stack([normalize(resize(b, 48, 48), m) for b in batch]),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_decode_and_preprocess_matches_device_on_jpeg_with_exif(orientation):
    import io

    from PIL import Image

    from edgedeploy.train.preprocess_tf import decode_and_preprocess

    img = Image.fromarray(color_image((180, 90, 30), (50, 70), seed=orientation))
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    for m in _manifests(40).values():
        np.testing.assert_allclose(decode_and_preprocess(buf.getvalue(), m), preprocess(buf.getvalue(), m), rtol=0, atol=1e-4)


@pytest.mark.skipif(not SHARED_PHOTOS.is_dir(), reason=PHOTOS_REASON)
def test_decode_and_preprocess_matches_device_on_real_photos():
    from edgedeploy.train.preprocess_tf import decode_and_preprocess

    files = sorted(SHARED_PHOTOS.glob("*/*.jpg"))[::40][:20]
    m = _manifests(160)["vgg16"]
    worst = max(float(np.abs(decode_and_preprocess(f, m) - preprocess(f, m)).max()) for f in files)
    assert worst <= 1e-4, worst  # measured: 0.0 (INTEGER_ACCURATE DCT == Pillow)
