"""The docs tell one story: what a test can check of the README and docs/ against the code. TF-free.

- the README is short, and its first screen is what it is, the two set-up commands and the path;
- every relative link (and #anchor) in the READMEs and docs/ leads somewhere;
- statements with one owner in the code say what the code says (latency_ms, the Python version,
  the standard TFLite metadata, install.sh's default PREFIX, the Python API's import names).
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "export" / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "reports" / "README.md",
        *sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("."))]


def test_the_readme_is_short_and_its_first_screen_is_the_path():
    lines = README.read_text().splitlines()
    assert len(lines) < 250, len(lines)
    first = "\n".join(lines[:45])
    assert "make demo" in first and "make test" in first
    path = first[first.index("## The path"):]
    order = [path.index(s) for s in ("train-model ", "export-model runs/digits --format all --select fastest",
                                     "export-model runs/digits --bundle pi-bundle")]
    assert order == sorted(order)
    assert "tar xzf pi-bundle.tar.gz && pi-bundle/install.sh" in "\n".join(lines[:50])


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", md.read_text(), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(ROOT).as_posix() for d in DOCS])
def test_every_relative_link_leads_somewhere(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if path.endswith("bring-your-own-model.md") and not dest.exists():
            continue  # written by the bring-your-own-model work, linked ahead of it
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert bad == []


def test_latency_ms_is_defined_as_the_code_defines_it():
    from edgedeploy.runtime.runner import LATENCY_HELP

    assert "queue waits are not included" in LATENCY_HELP and "decode + resize + normalize" in LATENCY_HELP
    for doc in (README, ROOT / "docs" / "commands.md"):
        text = " ".join(doc.read_text().split())
        assert "`latency_ms`" in text and "decode + resize + normalize time plus its share of the batched runtime call" in text
        assert "queue waits are not included" in text, doc


def test_the_python_version_is_the_one_pyproject_requires():
    need = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert need == ">=3.11"
    assert "You need Python 3.11 or newer" in README.read_text()


def test_no_doc_says_the_standard_tflite_metadata_is_not_written():
    """The README said every .tflite carries it; docs/raspberry-pi.md and the bundle README said it is not written."""
    for doc in DOCS:
        text = " ".join(doc.read_text().split()).lower()
        assert "standard tflite metadata (for mediapipe tasks and the tflite task library) is not written" not in text
        assert "is not written: no writer" not in text, doc
    from edgedeploy.export import bundle_readme

    assert "does not carry the *standard*" not in bundle_readme.__dict__.get("METADATA_NOTE", "")


def test_install_sh_default_prefix_is_the_one_the_docs_give():
    sh = (ROOT / "export" / "bundle_templates" / "install.sh").read_text()
    assert '[ -n "$PREFIX" ] || PREFIX=$HERE' in sh
    for doc in DOCS + [ROOT / "export" / "bundle_templates" / "README.md.in"]:
        text = doc.read_text()
        assert "PREFIX defaults to ~/" not in text and "defaults to /opt/" not in text, doc


def test_no_doc_imports_the_bare_folder_names():
    """`from edgedeploy.runtime import ...` works only from a checkout; the installed name is edgedeploy.runtime."""
    for doc in DOCS:
        assert not re.search(r"^\s*from (edge_runtime|train|export|benchmarks)(\.| import)", doc.read_text(), re.M), doc


def test_the_readme_python_api_imports():
    code = "\n".join(line for line in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0].splitlines()
                     if line.startswith(("from ", "import ")))
    assert "from edgedeploy import ImageClassifier" in code
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_emulation_is_described_as_it_runs():
    """'repeats all of this with legacy tflite-runtime' while the log showed the legacy pytest skipped."""
    for doc in (README, ROOT / "docs" / "raspberry-pi.md"):
        text = " ".join(doc.read_text().split())
        assert "repeats all of this" not in text and "Does it all again" not in text
    assert "its pytest run only with `--tests full`" in " ".join((ROOT / "docs" / "raspberry-pi.md").read_text().split())
