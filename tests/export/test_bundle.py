"""export-model --bundle: the device bundle (export/bundle.py), and edge-bench.

The fast tests are TF-free (the fixture models were exported once and cached) and
use --no-wheels; the slow one downloads the x86_64 wheels, installs the bundle
offline with install.sh, runs its service and refuses a flipped byte.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

import edgedeploy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    """The edgedeploy wheel, built once per session (the bundle takes it from EDGEDEPLOY_BUNDLE_WHEEL)."""
    from edgedeploy.export.bundle import project_wheel as build

    out = tmp_path_factory.mktemp("wheel")
    os.environ.pop("EDGEDEPLOY_BUNDLE_WHEEL", None)
    return build(out, lambda m: None)


@pytest.fixture
def wheel_env(monkeypatch, project_wheel):
    monkeypatch.setenv("EDGEDEPLOY_BUNDLE_WHEEL", str(project_wheel))
    return project_wheel


def export_model(*argv: str) -> int:
    from edgedeploy.export.cli import main

    return main([str(a) for a in argv])


def _model_with_sidecar(src: Path, dst_dir: Path) -> Path:
    from edgedeploy.runtime.classifier import load_manifest_for

    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = Path(shutil.copy(src, dst_dir / src.name))
    m = load_manifest_for(dst).replace(sha256=hashlib.sha256(dst.read_bytes()).hexdigest())
    (dst_dir / (dst.name + ".json")).write_text(m.to_json())
    return dst


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("name,extra,runtime", [("model_int8.tflite", "edge-tflite", "ai-edge-litert"),
                                                ("model_float32.onnx", "edge-onnx", "onnxruntime")])
def test_bundle_contents_sums_answers_and_tarball(tmp_path, edge_models, wheel_env, name, extra, runtime, capsys):
    from edgedeploy.runtime import ImageClassifier

    model = _model_with_sidecar(edge_models / name, tmp_path / "models")
    out = tmp_path / "b"
    assert export_model(tmp_path / "models", "--model", model, "--bundle", out, "--target", "x86_64", "--no-wheels") == 0
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for f in (name, name + ".json", "install.sh", "run.sh", "b.service.in", "selftest.py", "bundle.json", "README.md",
              "SHA256SUMS", "wheels/" + wheel_env.name):
        assert f in files, f
    # SHA256SUMS covers every other file, with the right hashes
    sums = dict(reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == files - {"SHA256SUMS"}
    assert all(_sha(out / f) == h for f, h in sums.items())
    # the sidecar records the model's own hash; the model is the same bytes
    assert json.loads((out / (name + ".json")).read_text())["sha256"] == _sha(out / name) == _sha(model)
    info = json.loads((out / "bundle.json").read_text())
    # one runtime only; the pure-Python serve extra always comes along, so run.sh serve works after install
    assert info["requirement"] == f"edgedeploy[{extra},serve]=={edgedeploy.__version__}" and info["runtime"] == runtime
    assert info["target"]["machine"] == "x86_64" and info["offline"] is False and info["wheels"] == [wheel_env.name]
    # recorded answers are edge_runtime's on this machine
    clf = ImageClassifier(out / name)
    assert len(info["samples"]) == 10 and {s["true_label"] for s in info["samples"]} == set(map(str, range(10)))
    for s in info["samples"]:
        assert clf.predict(out / "samples" / s["file"]).label == s["label"]
    # the project's wheel offers one extra per runtime
    with zipfile.ZipFile(wheel_env) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    assert f"Provides-Extra: {extra}" in meta
    with tarfile.open(tmp_path / "b.tar.gz") as t:
        assert {m.name for m in t.getmembers() if m.isfile()} == {f"b/{f}" for f in files}
    assert (out / "install.sh").stat().st_mode & 0o111
    assert "Restart=on-failure" in (out / "b.service.in").read_text()
    # the README tells what this very file carries: standard TFLite metadata for MediaPipe/Android, or not
    readme = (out / "README.md").read_text()
    if name.endswith(".tflite"):
        assert info["model"]["standard_metadata"].startswith("TFLITE_METADATA")
        assert "It also carries the standard TFLite metadata" in readme and "does not carry" not in readme
    else:
        assert info["model"]["standard_metadata"] is None and "this is an ONNX model" in readme
    assert "tar xzf b.tar.gz && b/install.sh" in readme
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]  # no temporary folder left


def test_bundle_refuses_overwrite_and_bad_input_with_one_line(tmp_path, edge_models, wheel_env, capsys):
    model = _model_with_sidecar(edge_models / "model_int8.tflite", tmp_path / "m")
    out = tmp_path / "b"
    args = [tmp_path / "m", "--model", model, "--bundle", out, "--target", "x86_64", "--no-wheels"]
    assert export_model(*args) == 0
    before = _sha(tmp_path / "b.tar.gz")
    capsys.readouterr()
    assert export_model(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to overwrite" in err[0] and "--force" in err[0]
    assert _sha(tmp_path / "b.tar.gz") == before
    assert export_model(*args, "--force") == 0
    cases = {
        "--model": ([tmp_path / "m", "--model", tmp_path / "nope.tflite", "--bundle", tmp_path / "c"], "nope.tflite"),
        "no bundle": ([tmp_path / "m", "--model", model], "--bundle"),
        "no model": ([tmp_path / "m", "--bundle", tmp_path / "c"], "--model FILE"),
        "target": ([tmp_path / "m", "--model", model, "--bundle", tmp_path / "c", "--target", "pi32"], "pi32"),
    }
    for case, (argv, needle) in cases.items():
        capsys.readouterr()
        assert export_model(*argv) == 2, case
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (case, err)
    assert not (tmp_path / "c").exists()
    # a model whose sidecar disowns it is not bundled
    bad = _model_with_sidecar(edge_models / "model_int8.tflite", tmp_path / "bad")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    assert export_model(tmp_path / "bad", "--model", bad, "--bundle", tmp_path / "d", "--no-wheels") == 2
    assert "SHA-256" in capsys.readouterr().err and not (tmp_path / "d").exists()


SELECTION = {
    "chosen": "model_int8.tflite", "criterion": "fastest", "written": "selected.tflite",
    "latency_source": "this machine, litert, 2 thread(s)",
    "reason": ["model_int8.tflite is the fastest accepted file: 168.9 KB, p50 0.063 ms.",
               "Runner-up: model_dynamic.tflite, 166.2 KB, p50 0.071 ms."],
    "candidates": [{"file": "model_int8.tflite", "p50_ms": 0.0632, "latency_source": "this machine, litert, 2 thread(s)"},
                   {"file": "model_dynamic.tflite", "p50_ms": 0.0711}],
}


def test_bundle_takes_selected_from_the_output_folder(tmp_path, edge_models, wheel_env):
    src = _model_with_sidecar(edge_models / "model_int8.tflite", tmp_path / "run" / "export")
    src.rename(src.with_name("selected.tflite"))
    src.with_name(src.name + ".json").rename(src.with_name("selected.tflite.json"))
    (tmp_path / "run" / "export" / "export_report.json").write_text(json.dumps({"selection": SELECTION}))
    assert export_model(tmp_path / "run", "--bundle", tmp_path / "b", "--no-wheels") == 0
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert info["model"]["file"] == "selected.tflite" and info["target"]["machine"] == "aarch64"
    # the selection's reasons are sentences, not a printed Python list, and its measured p50 is the latency
    readme = (tmp_path / "b" / "README.md").read_text()
    assert "['" not in readme and "not measured" not in readme
    assert "- Chosen by `export-model --select fastest`:\n  - model_int8.tflite is the fastest accepted file" in readme
    assert "  - Runner-up: model_dynamic.tflite" in readme
    assert "- Latency at export: p50 0.0632 ms, batch 1 (this machine, litert, 2 thread(s)), measured by `export-model --select`" in readme
    assert info["latency"].startswith("p50 0.0632 ms")
    # a pi64 bundle on this x86_64 machine: install.sh says so in one line, exit 2, before anything is installed
    if os.uname().machine != "aarch64":
        r = subprocess.run(["sh", str(tmp_path / "b" / "install.sh"), str(tmp_path / "prefix")], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.strip() == (
            f"install.sh: error: this bundle is for aarch64, but uname -m says {os.uname().machine} "
            "(make one with export-model --target)")
        assert not (tmp_path / "prefix").exists()


def test_a_sibling_bundled_by_model_does_not_claim_the_selection(tmp_path, edge_models, wheel_env):
    model = _model_with_sidecar(edge_models / "model_float32.tflite", tmp_path / "m")
    (tmp_path / "m" / "export_report.json").write_text(json.dumps({"selection": SELECTION}))
    assert export_model(tmp_path / "m", "--model", model, "--bundle", tmp_path / "b", "--no-wheels") == 0
    readme = (tmp_path / "b" / "README.md").read_text()
    assert "Chosen by" not in readme and "- Latency: not measured for this bundle" in readme


def test_edge_bench_runs_the_scripts_and_the_files_still_run(tmp_path, edge_models):
    from edgedeploy.bench.cli import command_names, main

    assert {"latency", "accuracy", "compare", "merge", "soak"} <= set(command_names())
    out = tmp_path / "lat.json"
    assert main(["latency", "--quick", "--runs", "3", "--warmup", "1", str(edge_models / "model_int8.tflite"),
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert "model_int8.tflite" in json.dumps(rows)
    assert main(["nope"]) == 2
    r = subprocess.run([sys.executable, "benchmarks/merge.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "usage: merge.py" in r.stdout


def _python3_is_311() -> bool:
    exe = shutil.which("python3")
    if not exe:
        return False
    r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"], capture_output=True, text=True)
    return r.stdout.strip() == "True"


@pytest.mark.slow
@pytest.mark.skipif(not _python3_is_311(), reason="install.sh uses the system python3, which must be 3.11 for cp311 wheels")
def test_x86_bundle_installs_offline_runs_and_refuses_a_flipped_byte(tmp_path, edge_models, wheel_env, request):
    model = _model_with_sidecar(edge_models / "model_int8.tflite", tmp_path / "m")
    out = tmp_path / "xb"
    assert export_model(tmp_path / "m", "--model", model, "--bundle", out, "--target", "x86_64") == 0
    wheels = {p.name.split("-")[0].lower() for p in (out / "wheels").glob("*.whl")}
    assert {"edgedeploy", "ai_edge_litert", "numpy", "pillow"} <= wheels and "onnxruntime" not in wheels
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
    info = json.loads((out / "bundle.json").read_text())
    # 1. The README's own words, as a user in their home folder, no PREFIX: it installs in place (the
    #    default PREFIX was ~/xb, the folder just unpacked: `cp: ... are the same file`, exit 1).
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(tmp_path / "xb.tar.gz", home)
    r = subprocess.run(["sh", "-c", "tar xzf xb.tar.gz && xb/install.sh"], cwd=home, capture_output=True, text=True,
                       env={**env, "HOME": str(home)}, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"installing in place, in {(home / 'xb').resolve()}" in r.stdout
    assert "10/10 samples give the recorded label" in r.stdout
    here = home / "xb"
    assert (here / "venv/bin/edge-infer").is_file() and (here / "xb.service").is_file() and (here / "service.env").is_file()
    assert f"ExecStart={here.resolve()}/run.sh" in (here / "xb.service").read_text()
    # run again, naming the bundle folder itself as PREFIX (spelled differently): in place again, and what
    # the first install added (venv/, inbox/, service.env, xb.service) is not mistaken for a foreign file
    r = subprocess.run(["sh", str(here / "install.sh"), f"{here}/.", "--no-selftest"], capture_output=True, text=True,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"installing in place, in {here.resolve()}" in r.stdout
    # the service as the README runs it: ~/xb/run.sh watch classifies dropped files as x86 recorded
    proc = subprocess.Popen([str(here / "run.sh"), "watch", "--max-images", "2", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc.stderr.readline()  # "watching ..."
    for s in info["samples"][:2]:
        shutil.copy(out / "samples" / s["file"], here / "inbox" / s["file"])
    stdout, _ = proc.communicate(timeout=150)
    got = {Path(d["path"]).name: d["label"] for d in map(json.loads, stdout.splitlines())}
    assert got == {s["file"]: s["label"] for s in info["samples"][:2]}
    # 2. An explicit PREFIX, where `id -un` cannot name the user (a minimal root filesystem, a container's
    #    arbitrary UID): the unit runs as that user's number. As root the test runs install.sh as a UID with
    #    no passwd entry, where `id -un` fails by itself; otherwise an `id` on PATH that fails the same way.
    prefix = tmp_path / "prefix"
    if os.getuid() == 0:
        uid = 4242
        assert subprocess.run(["id", "-un", str(uid)], capture_output=True).returncode != 0  # no such name here
        base = Path(tempfile.mkdtemp(prefix="edgedeploy-noname-"))  # outside pytest's root-only folder
        request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
        shutil.copytree(out, base / "xb")
        for p in [base, *base.rglob("*")]:
            os.chown(p, uid, uid)
        prefix = base / "prefix"
        r = subprocess.run(["sh", str(base / "xb/install.sh"), str(prefix)], capture_output=True, text=True,
                           env={**env, "HOME": str(base)}, timeout=900, user=uid, group=uid, extra_groups=[])
    else:
        uid = os.getuid()
        shim = tmp_path / "shim"
        shim.mkdir()
        real = shutil.which("id")
        (shim / "id").write_text(f"#!/bin/sh\ncase \"$*\" in *n*) echo \"id: cannot find name for user ID {uid}\" >&2; "
                                 f"exit 1 ;; esac\nexec {real} \"$@\"\n")
        (shim / "id").chmod(0o755)
        noid = {**env, "PATH": f"{shim}{os.pathsep}{env['PATH']}"}
        assert subprocess.run(["id", "-un"], env=noid, capture_output=True).returncode == 1
        r = subprocess.run(["sh", str(out / "install.sh"), str(prefix)], capture_output=True, text=True, env=noid, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10/10 samples give the recorded label" in r.stdout
    assert f"User={uid}" in (prefix / "xb.service").read_text()
    # the other service mode: run.sh serve answers POST /predict like x86 recorded
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = subprocess.Popen([str(prefix / "run.sh"), "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**env, "EDGEDEPLOY_PORT": str(port)})
    try:
        s0 = info["samples"][0]
        deadline = time.monotonic() + 120
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", method="POST",
                                             data=(out / "samples" / s0["file"]).read_bytes())
                with urllib.request.urlopen(req, timeout=10) as resp:
                    answer = json.loads(resp.read())
                break
            except OSError:
                assert srv.poll() is None and time.monotonic() < deadline, "run.sh serve did not come up"
                time.sleep(0.5)
        assert answer["label"] == s0["label"]
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    # edge-bench from the installed wheel (only the TFLite runtime there)
    r = subprocess.run([str(prefix / "venv/bin/edge-bench"), "latency", "--quick", "--runs", "3", str(prefix / model.name)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    # one flipped byte: install.sh refuses the bundle (exit 3), edge-infer the installed file (exit 2)
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = bytearray((bad / model.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / model.name).write_bytes(bytes(data))
    r = subprocess.run(["sh", str(bad / "install.sh"), str(tmp_path / "p2")], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and f"{model.name} does not match SHA256SUMS" in r.stderr
    assert not (tmp_path / "p2").exists()
    (prefix / model.name).write_bytes(bytes(data))
    r = subprocess.run([str(prefix / "venv/bin/edge-infer"), str(prefix / model.name), str(prefix / "samples")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "SHA-256" in r.stderr and model.name in r.stderr
    r = subprocess.run(["sh", str(out / "install.sh"), str(prefix), "--service", "nope"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "nope" in r.stderr


def test_bundle_needs_no_tensorflow(tmp_path, edge_models, wheel_env):
    model = _model_with_sidecar(edge_models / "model_float32.tflite", tmp_path / "m")
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from edgedeploy.export.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert 'tensorflow' not in sys.modules or sys.modules['tensorflow'] is None\n"
            "sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), "--model", str(model), "--bundle",
                        str(tmp_path / "b"), "--no-wheels"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["model"]["quantize"] == "none"
