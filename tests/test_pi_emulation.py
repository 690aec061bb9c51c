"""The Raspberry Pi proof: scripts/pi_emulation.sh, end to end, under qemu.

The end-to-end test needs root, binfmt_misc and a network that reaches Debian's
mirror and PyPI (the first time); it skips with the script's own reason where
emulation is impossible (`--check` exits 3), and fails on anything else.
Run only these: `pytest -m pi`. Leave them out: `pytest -m "not pi"` (what
.ci/run does when it calls the script itself, so that its output is in the log).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pi_emulation.sh"

pytestmark = [
    pytest.mark.pi,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Pi emulation needs Linux (chroot, binfmt_misc)"),
]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.setdefault("EDGEDEPLOY_PI_PYTHON", sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_usage_errors_exit_2_with_one_line():
    out = _run("--board", "pi3")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["pi_emulation: --board must be pi4 or pi5, got 'pi3'"]
    out = _run("--no-such-flag")
    assert out.returncode == 2 and "unknown argument: --no-such-flag" in out.stderr


def test_help_documents_the_exit_codes():
    out = _run("--help")
    assert out.returncode == 0
    for code in ("0", "1", "2", "3", "4"):
        assert re.search(rf"^\s+{code}\s+\S", out.stdout, re.M), f"exit code {code} is not documented"


def test_check_says_yes_or_why_not():
    out = _run("--check")
    assert out.returncode in (0, 3), out.stdout + out.stderr
    line = out.stdout.strip().splitlines()[-1]
    if out.returncode == 0:
        assert "emulation is possible here" in line
    else:
        assert "emulation is not possible here: " in line and len(line.split(": ", 2)[-1]) > 5


@pytest.mark.slow
def test_edge_runtime_runs_on_an_emulated_pi_like_on_x86():
    if os.environ.get("EDGEDEPLOY_PI_E2E_ELSEWHERE"):
        # .ci/run runs the script itself right after the suite, so its output is in the log.
        pytest.skip(f"the end-to-end emulation runs outside pytest: {os.environ['EDGEDEPLOY_PI_E2E_ELSEWHERE']}")
    check = _run("--check")
    if check.returncode == 3:
        pytest.skip(check.stdout.strip().splitlines()[-1])
    assert check.returncode == 0, check.stdout + check.stderr
    out = _run(timeout=3600)
    log = out.stdout + out.stderr
    tail = "\n".join(log.splitlines()[-60:])
    if out.returncode == 3:
        pytest.skip(tail.splitlines()[-1])
    assert out.returncode == 0, f"pi_emulation.sh exited {out.returncode}:\n{tail}"
    assert "platform.machine(): aarch64" in log
    assert "PI-CHECK no-tensorflow PASS" in log
    same = re.findall(r"^\s+OK\s+\[(\w+)\] (\S+): top-1 x86 == aarch64 for (\d+)/(\d+) images", log, re.M)
    assert {v for v, *_ in same} >= {"litert", "legacy"}, tail
    assert all(a == b and int(a) > 0 for *_, a, b in same), same
    assert any(m.endswith(".onnx") for _, m, *_ in same) and any(m.endswith(".tflite") for _, m, *_ in same)


def _ci_tree(tmp_path: Path, check_exit: int) -> Path:
    """A copy of .ci/run beside a stub pi_emulation.sh whose --check exits ``check_exit``, and a `make` that passes."""
    import shutil

    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "pi_emulation.sh").write_text(
        "#!/bin/bash\n"
        'if [ "${1:-}" = --check ]; then\n'
        f'  [ {check_exit} = 0 ] && echo "pi_emulation: emulation is possible here" && exit 0\n'
        '  echo "pi_emulation: emulation is not possible here: not root (uid 1000)"; exit 3\n'
        "fi\n"
        'echo "EMULATION RAN"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text('#!/bin/sh\necho "make $*" > "$(dirname "$0")/../make.log"\n')
    (bin_dir / "make").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("ci, check_exit, want_rc, want", [
    ("true", 3, 1, "FAILED Raspberry Pi emulation: it cannot run on this CI machine, and CI=true needs it: "
                   "pi_emulation: emulation is not possible here: not root (uid 1000)"),
    ("", 3, 0, "SKIPPED Raspberry Pi emulation (not CI; with CI=true this fails): "
               "pi_emulation: emulation is not possible here: not root (uid 1000)"),
    ("true", 0, 0, "EMULATION RAN"),
])
def test_ci_cannot_pass_without_the_emulation(tmp_path, ci, check_exit, want_rc, want):
    bin_dir = _ci_tree(tmp_path, check_exit)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CI": ci}
    out = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == want_rc, out.stdout + out.stderr
    assert want in (out.stdout + out.stderr)
    assert (tmp_path / "make.log").read_text().strip() == "make test"  # the README's test command, first
