"""Self-test of an installed edgedeploy bundle: classify the bundled samples, compare with the recorded answers.

    PREFIX/venv/bin/python PREFIX/selftest.py PREFIX

Exit codes: 0 every top-1 label equals the recorded one; 4 a label differs;
2 the model is refused (e.g. its SHA-256 does not match its sidecar).
"""
import json
import sys
from pathlib import Path

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.runtime import ImageClassifier

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
info = json.loads((root / "bundle.json").read_text())
try:
    clf = ImageClassifier(root / info["model"]["file"])  # checks the file against the sidecar's SHA-256
except EdgeDeployError as exc:
    print(f"selftest: error: {exc}", file=sys.stderr)
    sys.exit(2)
bad, worst = 0, 0.0
for s in info["samples"]:
    pred = clf.predict(root / "samples" / s["file"])
    same = pred.label == s["label"]
    worst = max(worst, abs(pred.score - s["score"]))
    bad += not same
    print(f"selftest: {s['file']}: {pred.label} {pred.score:.4f} (recorded {s['label']} {s['score']:.4f})"
          + ("" if same else "  <-- differs"))
print(f"selftest: {len(info['samples']) - bad}/{len(info['samples'])} samples give the recorded label, "
      f"max |score diff| {worst:.2e} ({clf.backend.name}, {info['target']['machine']} bundle)")
sys.exit(4 if bad else 0)
