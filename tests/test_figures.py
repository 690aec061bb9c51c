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


def test_a_hand_edited_figure_is_caught():
    """A number changed by hand in docs/figures.md fails the check; render puts the report's back.

    The copy sits beside the original (a hidden name, removed after), so its links to reports/ are the same.
    """
    import tempfile

    original = (ROOT / "docs" / "figures.md").read_text()
    m = re.search(r"<!-- figure:soak -->\n(.*?)<!-- /figure:soak -->", original, re.S)
    assert m and "|" in m.group(1)
    tampered = original.replace(m.group(1), m.group(1).replace("|", "| 1", 1))
    with tempfile.NamedTemporaryFile("w", dir=ROOT / "docs", prefix=".tampered-", suffix=".md", delete=False) as f:
        f.write(tampered)
    doc = Path(f.name)
    try:
        proc = _run("check", "--doc", str(doc))
        assert proc.returncode == 1 and f"{doc.name}: soak" in proc.stderr
        assert _run("render", "--doc", str(doc)).returncode == 0
        assert doc.read_text() == original
    finally:
        doc.unlink()


# Tables that hold no measurement (what a command or an extra is), allowed outside figure markers.
NOT_FIGURES = ("| command | what | more |", "| extra | what | for |")


def _tables_outside_markers(text: str) -> list[str]:
    outside = re.sub(r"<!-- figure:([\w.-]+) -->.*?<!-- /figure:\1 -->", "", text, flags=re.S)
    heads, prev = [], ""
    for line in outside.splitlines():
        if line.startswith("|") and not prev.startswith("|"):
            heads.append(line)
        prev = line
    return heads


def test_every_figure_table_is_rendered_not_typed():
    """docs/figures.md and docs/gate.md hold only rendered tables; the README only those and two tables of names."""
    for doc in ("docs/figures.md", "docs/gate.md"):
        assert _tables_outside_markers((ROOT / doc).read_text()) == [], f"a hand-typed table in {doc}"
    readme = _tables_outside_markers((ROOT / "README.md").read_text())
    assert [h for h in readme if not h.startswith(NOT_FIGURES)] == [], "a hand-typed table in README.md"
    export = (ROOT / "export" / "README.md").read_text()
    measured = export[export.index("## Measured on digits"):]
    assert "<!-- figure:export_digits -->" in measured and _tables_outside_markers(measured) == []


def test_the_check_covers_every_document_with_figures():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import figures
    finally:
        sys.path.pop(0)
    covered = {p.relative_to(ROOT).as_posix() for p in figures.DOCS}
    marked = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.md")
              if ".venv" not in p.parts and "build" not in p.parts and "<!-- figure:" in p.read_text(errors="replace")}
    assert marked <= covered, marked - covered
    assert {"README.md", "docs/figures.md", "docs/gate.md", "export/README.md"} <= covered
