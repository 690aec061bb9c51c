"""export/coverage.py: the simulation runs the gate's own rule, and the error rates it shows hold.

Bounded runs (a few seconds): a part of the grid where the promises are
tightest, the family-wise false rejection with and without Bonferroni, and
the committed reports/gate_coverage.json against its nominal level.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.export import coverage
from edgedeploy.export.gate import Agreement, Evidence, GatePolicy, PairedCounts, decide

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def _slack(rate: float, reps: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / reps)


def test_the_simulation_runs_the_gates_rule() -> None:
    rng = np.random.default_rng(5)
    p = GatePolicy("strict")
    tables = coverage.draw_tables(coverage.table_probs(0.011, 0.9, 0.0025), 400, 60, rng)
    out = coverage._outcomes(tables, p)
    verdicts = [decide(Evidence(PairedCounts(400, int(b), int(c), int(d), int(a + b)), Agreement(400, int(b + c))),
                       "int8", p).verdict for a, b, c, d in tables]
    assert out["accepted"] == pytest.approx(verdicts.count("accepted") / 60)
    assert out["rejected"] == pytest.approx(verdicts.count("rejected") / 60)
    assert out["inconclusive"] == pytest.approx(verdicts.count("inconclusive") / 60)


def test_table_probabilities() -> None:
    a, b, c, d = coverage.table_probs(0.011, 0.9, 0.0025)
    assert a + b == pytest.approx(0.9) and b - c == pytest.approx(0.011) and a + b + c + d == pytest.approx(1.0)
    assert coverage.table_probs(0.0, 0.99, 0.05)[2] == pytest.approx(0.01)  # c cannot exceed the reference's errors
    with pytest.raises(ValueError):
        coverage.table_probs(0.5, 0.3, 0.0)


def test_strict_false_acceptance_at_and_over_the_budget() -> None:
    p = GatePolicy()
    cells = coverage.run_grid(p, drops=(1.0, 1.1), sizes=(300, 1000, 5000), accuracies=(0.6, 0.99), reps=4000,
                              boundary_reps=6000, seed=11)
    assert len(cells) == 12
    for c in cells:
        assert c.accepted <= p.alpha + _slack(p.alpha, c.reps), c
        assert c.accepted + c.rejected + c.inconclusive == pytest.approx(1.0)
    s = coverage.summary(cells, p.alpha)
    assert s["strict_false_acceptance_at_1.1x"]["rate"] <= p.alpha


def test_faithful_files_are_rarely_rejected_and_accepted_with_enough_images() -> None:
    p = GatePolicy()
    cells = coverage.run_grid(p, drops=(0.0, 1.0), sizes=(100, 2000), accuracies=(0.6, 0.99), reps=3000,
                              boundary_reps=6000, seed=12)
    for c in cells:
        assert c.rejected <= p.alpha + _slack(p.alpha, c.reps), c
    big = [c for c in cells if c.drop_x == 0.0 and c.n == 2000]
    assert all(c.accepted > 0.99 for c in big)  # the power side: a faithful file is proven on 2,000 images
    small = [c for c in cells if c.n == 100]
    assert all(c.accepted == 0.0 for c in small)  # 100 images cannot prove 1 point, and the gate does not pretend


def test_family_wise_false_rejection_needs_the_correction() -> None:
    p = GatePolicy()
    fw = coverage.family_wise(p, n_classes=10, per_class=300, reps=3000, seed=13)
    assert fw["parts"] == 22
    assert fw["bonferroni"]["false_rejection"] <= p.alpha + _slack(p.alpha, 3000)
    assert fw["uncorrected"]["false_rejection"] > 4 * p.alpha  # each part at 2.5%: many chances to reject


def test_intersection_union_bounds_acceptance_by_the_worse_part() -> None:
    p = GatePolicy()
    for r in coverage.intersection_union(p, sizes=(1000,), reps=4000, seed=14):
        assert r["accepted"] <= p.alpha + _slack(p.alpha, 4000)


def test_mc_error() -> None:
    assert coverage.mc_error(0.025, 10000) == pytest.approx(math.sqrt(0.025 * 0.975 / 10000))
    assert coverage.mc_error(0.0, 100) == pytest.approx(0.01)


def test_write_report(tmp_path: Path) -> None:
    res = coverage.write_report(tmp_path / "c.md", tmp_path / "c.json", drops=(0.0, 1.1), sizes=(300,),
                                accuracies=(0.9,), reps=500, boundary_reps=500)
    md = (tmp_path / "c.md").read_text()
    assert "Nominal level: 2.5%" in md and "`--gate strict` false acceptance at 1.1x the budget" in md
    assert "at or under the nominal 2.5%" in md and "Bonferroni" in md and "| 1.1x | 300 | 0.9 |" in md
    back = json.loads((tmp_path / "c.json").read_text())
    assert back["summary"]["nominal"] == pytest.approx(0.025) and len(back["cells"]) == 2
    assert res["summary"]["strict_false_acceptance_at_1.1x"]["rate"] == back["summary"]["strict_false_acceptance_at_1.1x"]["rate"]


def test_committed_report_is_within_its_nominal_level() -> None:
    path = REPORTS / "gate_coverage.json"
    if not path.is_file():
        pytest.skip("reports/gate_coverage.json not written yet")
    res = json.loads(path.read_text())
    s = res["summary"]
    assert s["strict_false_acceptance_at_1.1x"]["rate"] <= s["nominal"]
    assert s["strict_false_acceptance_at_1.1x"]["reps"] >= 4000
    over = [c for c in res["cells"] if c["drop_x"] >= 1.0]
    assert all(c["accepted"] <= s["nominal"] + _slack(s["nominal"], c["reps"]) for c in over)
    assert res["family_wise"]["bonferroni"]["false_rejection"] <= s["nominal"]
    assert "Newcombe" in res["method"]["accuracy_drop"] and "Tango" in res["method"]["accuracy_drop"]
