"""The last mile: one exported model -> a verified, offline-installable device bundle.

    export-model RUN --model models/model_int8.tflite --bundle pi-bundle [--target pi64|x86_64] [--no-wheels]

writes the folder ``pi-bundle/`` and ``pi-bundle.tar.gz`` beside it (built in a
temporary folder, then renamed; never over an existing one without --force):

- the model file and its sidecar manifest, which records the file's SHA-256;
- ``wheels/``: the project's own wheel and, unless ``--no-wheels``, every runtime
  dependency as wheels for the target (``pip download --only-binary=:all:
  --platform ...``), with ONLY the runtime the model's format needs (the
  ``edge-tflite`` or ``edge-onnx`` extra);
- ``samples/``: a few test-split images, and in ``bundle.json`` the answers
  edge_runtime gave for them on this machine (install.sh's self-test);
- ``install.sh``, ``run.sh``, the systemd unit's template ``<bundle>.service.in`` (install.sh
  writes ``PREFIX/<bundle>.service`` from it) and ``selftest.py`` (templates in
  ``bundle_templates/``), ``bundle.json``, ``README.md`` and ``SHA256SUMS``.

``install.sh`` without a PREFIX installs in place, in the folder the tarball unpacked, so
``tar xzf pi-bundle.tar.gz && pi-bundle/install.sh`` works as written for any user.

No TensorFlow is needed here: the manifest, the sample answers and the hashes
all come from edgedeploy.runtime. Only the digits-free sample path reads the run's
test split through ``export.data`` (train/'s loader).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgedeploy.core.command import RuntimeFailure, UsageError
from edgedeploy.core.io import atomic_path
from edgedeploy.core.registry import Registry
from edgedeploy.core.runfolder import RunFolder
from edgedeploy.runtime.manifest import Manifest

from .bundle_readme import readme_text
from .options import SERVICES

if TYPE_CHECKING:
    from .options import BundleRequest, ExportOptions

TEMPLATES = Path(__file__).with_name("bundle_templates")
DEFAULT_SAMPLES = 10
# Set to a prebuilt edgedeploy wheel to skip building one (CI, the Pi emulation).
WHEEL_ENV = "EDGEDEPLOY_BUNDLE_WHEEL"


@dataclass(frozen=True)
class Target:
    """A device platform: what ``uname -m`` says, its Python, and the wheel tags pip may pick."""

    name: str
    machine: str
    python: str
    description: str
    platforms: tuple[str, ...]

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp",
                "--abi", "cp" + self.python.replace(".", ""), "--abi", "abi3", "--abi", "none"]
        for p in self.platforms:
            args += ["--platform", p]
        return args


def _manylinux(arch: str) -> tuple[str, ...]:
    # pip does not expand the newer manylinux tags by itself: list each one (as pi_emulation.sh does).
    return ("manylinux2014_" + arch, *(f"manylinux_2_{v}_{arch}" for v in range(17, 37)), "linux_" + arch)


TARGETS: Registry[Target] = Registry("bundle target")
TARGETS.register("pi64")(Target("pi64", "aarch64", "3.11", "Raspberry Pi OS Bookworm 64-bit (aarch64, Python 3.11)",
                                _manylinux("aarch64")))
TARGETS.register("x86_64")(Target("x86_64", "x86_64", "3.11", "Linux x86_64 (manylinux, Python 3.11)",
                                  _manylinux("x86_64")))

# The manifest's `format` -> (the project's extra that pulls only that runtime, the runtime's distribution).
RUNTIMES: dict[str, tuple[str, str]] = {"tflite": ("edge-tflite", "ai-edge-litert"), "onnx": ("edge-onnx", "onnxruntime")}


@dataclass
class BundleOptions:
    """What ``export-model --bundle`` takes; validates itself."""

    model: str
    bundle: str
    run: str | None = None
    images: str | None = None  # a folder of images for the self-test samples, when there is no run folder (--calibration-data)
    target: str = "pi64"
    wheels: bool = True
    service: str = "watch"
    samples: int = DEFAULT_SAMPLES
    force: bool = False
    report: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        TARGETS.get(self.target)
        if self.service not in SERVICES:
            raise UsageError(f"Received --service {self.service!r}, expected one of: {', '.join(SERVICES)}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise UsageError(f"Received samples={self.samples!r}, expected an integer >= 1")
        p = Path(self.model)
        if not p.is_file():
            raise UsageError(f"Received --model {self.model!r}, expected an exported model file")
        out = Path(self.bundle)
        if not out.name or out.name in (".", ".."):
            raise UsageError(f"Received --bundle {self.bundle!r}, expected a folder name")
        for q in (out, tarball_path(out)):
            if q.exists() and not self.force:
                raise UsageError(f"refusing to overwrite existing {q}; pass --force to replace it")


def tarball_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".tar.gz")


def find_selected(folder: Path) -> Path | None:
    """``selected.<ext>`` written by ``export-model --select`` in ``folder``, if exactly one."""
    found = [p for p in sorted(folder.glob("selected.*")) if p.is_file() and not p.name.endswith((".json", ".md"))]
    return found[0] if len(found) == 1 else None


# -- pieces ----------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_model(model: Path) -> tuple[Manifest, str]:
    """The model's manifest (embedded, else sidecar) and SHA-256; refuses a file its sidecar disowns."""
    from edgedeploy.runtime.classifier import load_manifest_for
    from edgedeploy.runtime.integrity import verify_model_hash

    verify_model_hash(model)
    manifest = load_manifest_for(model)
    if manifest is None:
        raise UsageError(f"{model} carries no manifest (embedded or sidecar): bundle a file export-model wrote")
    if manifest.format not in RUNTIMES:
        raise UsageError(f"{model}: manifest format {manifest.format!r} has no device runtime; expected one of: "
                         f"{', '.join(RUNTIMES)}")
    return manifest, _sha256(model)


def folder_samples(folder: str, manifest: Manifest, n: int) -> Any:
    """``n`` images of a folder (class-balanced when its subfolders are the labels; else true label "?")."""
    import numpy as np

    from edgedeploy.runtime.datasets import ImageSet

    from .sources._foreign import read_images, split_folder

    split = split_folder(folder, manifest.labels, n, seed=0)
    images, labels, _ = read_images(split.calibration, manifest.input_channels)
    names = list(manifest.labels) + ["?"]
    return ImageSet(images, np.asarray([int(c) if c >= 0 else len(names) - 1 for c in labels], np.int64), names)


def sample_images(manifest: Manifest, run: str | None, n: int, images: str | None = None) -> list[tuple[Any, str]]:
    """(uint8 image, true label) pairs from the test split: the embedded digits, else the run's own split, else ``images``."""
    import numpy as np

    from edgedeploy.runtime.datasets import choose_indices, load_digits

    if manifest.dataset == "digits" or (not manifest.dataset and run is None and images is None):
        data = load_digits("test")
    elif run is not None and RunFolder(run).config_path.is_file():
        from .data import load_split

        config = RunFolder(run).config()
        data = load_split(Path(run), "test", max_samples=n, balanced=True, seed=0, config=config)
    elif images is not None:
        data = folder_samples(images, manifest, n)
    else:
        raise UsageError(f"no test images for the self-test: dataset {manifest.dataset!r} needs the run folder "
                         "(export-model RUN --bundle ...), or --calibration-data DIR for a model without one")
    idx = choose_indices(data.labels, n, True, 0, len(data.label_names))
    return [(np.asarray(data.images[i]), data.label_names[int(data.labels[i])]) for i in idx[:n]]


def write_samples(folder: Path, model: Path, manifest: Manifest, run: str | None, n: int,
                  images: str | None = None) -> list[dict[str, Any]]:
    """PNG samples plus the answers edge_runtime gives for them here (the self-test's reference)."""
    from PIL import Image

    from edgedeploy.runtime.classifier import ImageClassifier

    folder.mkdir()
    rows = []
    clf = ImageClassifier(model, top_k=3)
    for k, (img, truth) in enumerate(sample_images(manifest, run, n, images)):
        name = f"sample_{k:02d}_true_{''.join(c if c.isalnum() else '_' for c in truth)}.png"
        Image.fromarray(img).save(folder / name)
        pred = clf.predict(folder / name)
        rows.append({"file": name, "true_label": truth, "label": pred.label, "score": round(pred.score, 6),
                     "top_k": [{"label": lab, "score": round(s, 6)} for lab, s in pred.top_k]})
    return rows


def standard_metadata(model: Path) -> str | None:
    """What the file carries for tools other than edgedeploy (the standard TFLite metadata), or None."""
    from edgedeploy.runtime.formats import format_for_path

    try:
        return format_for_path(model).standard_metadata(model.read_bytes())
    except (ValueError, OSError):
        return None


def source_root() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "edgedeploy").is_dir() else None


def package_folders(root: Path) -> list[str]:
    """The source folders the wheel is built from: pyproject.toml's package-dir mapping (its one owner)."""
    import tomllib

    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return sorted(set(mapping.values()))


def project_wheel(dest: Path, log: Callable[[str], None]) -> Path:
    """The edgedeploy wheel: $EDGEDEPLOY_BUNDLE_WHEEL, else built from this checkout (pip wheel --no-deps)."""
    given = os.environ.get(WHEEL_ENV)
    if given:
        if not Path(given).is_file():
            raise UsageError(f"Received {WHEEL_ENV}={given!r}, expected an edgedeploy wheel file")
        return Path(shutil.copy(given, dest))
    root = source_root()
    if root is None:
        raise UsageError(f"cannot build the edgedeploy wheel: no source checkout beside {__file__}; set {WHEEL_ENV}")
    with tempfile.TemporaryDirectory(prefix="edgedeploy-wheel-") as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (root / name).is_file():
                shutil.copy(root / name, src / name)
        for pkg in package_folders(root):
            if (root / pkg).is_dir():
                shutil.copytree(root / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        log("bundle: building the edgedeploy wheel (pip wheel --no-deps)")
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", tmp, str(src)]
        r = subprocess.run(cmd + ["--no-build-isolation"], capture_output=True, text=True)
        if r.returncode != 0:  # no setuptools in this env: let pip make an isolated build env
            r = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("edgedeploy-*.whl"))
        if r.returncode != 0 or not wheels:
            raise RuntimeFailure(f"building the edgedeploy wheel failed: {_last_line(r.stderr)}")
        return Path(shutil.copy(wheels[0], dest))


def wheel_extras(wheel: Path) -> set[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode("utf-8", "replace").splitlines()
    return {line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:")}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def download_wheels(dest: Path, requirement: str, target: Target, log: Callable[[str], None], label: str = "") -> None:
    """Every dependency of ``requirement`` as wheels for ``target`` (binary only, pip's cache applies)."""
    log(f"bundle: pip download {label or requirement} for {target.description}")
    env = dict(os.environ, PIP_CONSTRAINT="")  # the host's constraints pin the host's Python, not the device's
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", *target.pip_args(),
           "-d", str(dest), requirement]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeFailure(f"pip download for {target.name} failed: {_last_line(r.stderr)}")


def gate_figures(manifest: Manifest, model: Path, report: dict[str, Any] | None) -> dict[str, Any]:
    """The variant's gate figures (its manifest) and, when export_report.json chose this file, the selection."""
    keys = ("accuracy", "keras_accuracy", "accuracy_drop", "top1_agreement", "max_abs_prob_diff", "parity_samples",
            "parity_split", "worst_class", "worst_class_accuracy_drop", "gate")
    out: dict[str, Any] = {"metrics": {k: manifest.metrics[k] for k in keys if k in manifest.metrics}}
    if report is None:
        rp = model.parent / "export_report.json"
        try:
            report = json.loads(rp.read_text()) if rp.is_file() else None
        except (OSError, ValueError):
            report = None
    if isinstance(report, dict):
        sel = report.get("selection")
        if isinstance(sel, dict) and model.name in (_chosen_name(sel), sel.get("written")):
            out["selection"] = sel  # only when this file is the one --select chose (not a sibling bundled by --model)
        keras = report.get("keras")
        if isinstance(keras, dict) and "test_accuracy" in keras:
            out["keras_test_accuracy"] = keras["test_accuracy"]
    return out


def _chosen_name(sel: dict[str, Any]) -> str | None:
    chosen = sel.get("chosen")
    if isinstance(chosen, dict):
        chosen = chosen.get("file")
    return chosen if isinstance(chosen, str) else None


def find_latency(figures: dict[str, Any]) -> str | None:
    """The chosen file's p50 as ``export-model --select`` measured it (or read it from --latency-report), if any."""
    sel = figures.get("selection") or {}
    name = _chosen_name(sel)
    row = next((c for c in sel.get("candidates") or [] if isinstance(c, dict) and c.get("file") == name), None)
    if not row and isinstance(sel.get("chosen"), dict):
        row = sel["chosen"]
    p50 = (row or {}).get("p50_ms", sel.get("p50_ms"))
    if not isinstance(p50, (int, float)):
        return None
    where = (row or {}).get("latency_source") or sel.get("latency_source")
    return f"p50 {p50:.3g} ms, batch 1" + (f" ({where})" if where else "") + ", measured by `export-model --select`"


def render(name: str, values: dict[str, Any]) -> str:
    text = (TEMPLATES / name).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    return text


def write_sums(folder: Path) -> int:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return len(lines)


# -- the bundle ------------------------------------------------------------------------
def make_bundle(opts: BundleOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``opts.bundle`` and ``<bundle>.tar.gz`` atomically; return ``bundle.json``'s content."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    target = TARGETS.get(opts.target)
    model = Path(opts.model)
    manifest, digest = read_model(model)
    extra, runtime = RUNTIMES[manifest.format]
    out = Path(opts.bundle)
    name = out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out.parent))
    try:
        shutil.copy(model, work / model.name)
        sidecar = manifest.replace(sha256=digest)
        (work / (model.name + ".json")).write_text(sidecar.to_json() + "\n")
        samples = write_samples(work / "samples", work / model.name, manifest, opts.run, opts.samples, opts.images)
        (work / "wheels").mkdir()
        wheel = project_wheel(work / "wheels", log)
        from importlib import metadata

        version = wheel.name.split("-")[1]
        # Both service modes work after install (run.sh watch|serve): the serve extra is pure
        # Python (starlette, uvicorn, prometheus-client: about 1 MB of wheels), so it always comes along.
        extras = [extra] + (["serve"] if "serve" in wheel_extras(wheel) else [])
        if extra not in wheel_extras(wheel):
            raise RuntimeFailure(f"{wheel.name} has no [{extra}] extra; rebuild it from this checkout")
        requirement = f"edgedeploy[{','.join(extras)}]=={version}"
        if opts.wheels:
            download_wheels(work / "wheels", f"{wheel}[{','.join(extras)}]", target, log, label=requirement)
        wheels = sorted(p.name for p in (work / "wheels").glob("*.whl"))
        figures = gate_figures(manifest, model, opts.report)
        info: dict[str, Any] = {
            "schema": 1, "name": name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgedeploy": version,
            "target": {"name": target.name, "machine": target.machine, "python": target.python,
                       "description": target.description},
            "model": {"file": model.name, "sha256": digest, "size_bytes": model.stat().st_size,
                      "format": manifest.format, "quantize": manifest.quantize, "labels": manifest.labels,
                      "input": [manifest.input_height, manifest.input_width, manifest.input_channels],
                      "model_name": manifest.model_name, "dataset": manifest.dataset,
                      "standard_metadata": standard_metadata(model)},
            "runtime": runtime, "requirement": requirement, "offline": opts.wheels, "wheels": wheels,
            "service": opts.service, "gate": figures, "latency": find_latency(figures),
            "samples": samples, "made_on": {"machine": os.uname().machine, "python": sys.version.split()[0]},
        }
        try:
            info["runtime_version_here"] = metadata.version(runtime)
        except metadata.PackageNotFoundError:
            pass
        values = {"NAME": name, "MACHINE": target.machine, "PYTHON": target.python, "OFFLINE": int(opts.wheels),
                  "REQUIREMENT": requirement, "MODEL": model.name, "SERVICE": opts.service,
                  "INSTALL_FROM": "offline from wheels/" if opts.wheels else "from the package index"}
        for src, dst, mode in (("install.sh", "install.sh", 0o755), ("run.sh", "run.sh", 0o755),
                               ("service.unit", f"{name}.service.in", 0o644), ("selftest.py", "selftest.py", 0o644)):
            (work / dst).write_text(render(src, values))
            os.chmod(work / dst, mode)
        (work / "bundle.json").write_text(json.dumps(info, indent=2) + "\n")
        (work / "README.md").write_text(readme_text(info, manifest, target))
        n = write_sums(work)
        os.chmod(work, 0o755)
        tar = tarball_path(out)
        with atomic_path(tar, force=opts.force) as tmp:
            with tarfile.open(tmp, "w:gz") as t:
                t.add(work, arcname=name)
        if out.exists():
            old = out.with_name(f".{name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"bundle: {out}/ ({n} files, {len(wheels)} wheels, {size / 1e6:.1f} MB) and {tar.name} "
        f"({tar.stat().st_size / 1e6:.1f} MB) for {target.description}; install: tar xzf {tar.name} && {name}/install.sh")
    return info


def bundle_export(export: "ExportOptions", request: "BundleRequest", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """export-model's --bundle path, one forward call: bundle ``request.model`` as it is (no conversion),
    or run the export with ``--select`` first and bundle the OUTPUT/selected.* it writes."""
    report = None
    model = request.model
    for q in (Path(request.bundle), tarball_path(Path(request.bundle))):  # before any conversion
        if q.exists() and not export.force:
            raise UsageError(f"refusing to overwrite existing {q}; pass --force to replace it")
    if model is None:
        from .sources import default_output

        out = Path(export.output) if export.output else default_output(export.source)
        if export.select:  # export-model --select writes OUTPUT/selected.<ext>
            from .pipeline import run_export

            report = run_export(export)
        model = find_selected(out)
        if model is None:
            raise UsageError(f"--bundle needs a model: pass --model FILE, or --select (no selected.* in {out})")
    is_run = Path(export.source).is_dir() and RunFolder(export.source).model.is_file()
    opts = BundleOptions(model=str(model), bundle=request.bundle, run=export.source if is_run else None,
                         images=export.calibration_data or export.parity_data, target=request.target, wheels=request.wheels, service=request.service, force=export.force,
                         report=report)
    return make_bundle(opts, log)
