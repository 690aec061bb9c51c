"""Every figure table in the READMEs is what its committed report says (scripts/figures.py)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "figures.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_readme_tables_equal_their_reports():
    proc = _run("check")
    assert proc.returncode == 0, proc.stderr
    n = int(re.search(r"checked (\d+) figure tables", proc.stdout).group(1))
    assert n >= 10  # the README's figures are all rendered, not typed


def test_a_hand_edited_figure_is_caught(tmp_path):
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- figure:soak -->\n(.*?)<!-- /figure:soak -->", readme, re.S)
    assert m and "|" in m.group(1)
    tampered = readme.replace(m.group(1), m.group(1).replace("|", "| 1", 1))
    doc = tmp_path / "README.md"
    doc.write_text(tampered)
    proc = _run("check", "--doc", str(doc))
    assert proc.returncode == 1 and "README.md: soak" in proc.stderr
    assert _run("render", "--doc", str(doc)).returncode == 0
    assert doc.read_text() == readme


def test_every_table_in_the_figures_section_is_rendered():
    readme = (ROOT / "README.md").read_text()
    figures = readme[readme.index("## Figures"):readme.index("## Notes and known limits")]
    outside = re.sub(r"<!-- figure:([\w.-]+) -->.*?<!-- /figure:\1 -->", "", figures, flags=re.S)
    assert not [line for line in outside.splitlines() if line.startswith("|")], "a hand-typed table in Figures"
