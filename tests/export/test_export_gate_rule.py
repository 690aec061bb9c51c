"""The gate's decision rule (export/gate.py) and the evidence it weighs (export/parity.py), without TensorFlow.

- the verdicts on hand-built evidence: one lost image of 80 is not a
  rejection; damage seen in the disagreement is; a class proven beyond
  budget rejects the file;
- the error model: acceptance needs every part proven (intersection-union),
  rejection uses Bonferroni-corrected lower bounds over 2 + 2K parts, the
  drop's upper end is the 95% interval's (97.5% one-sided), the
  disagreement's is exact (Clopper-Pearson);
- evidence is held out: training images never enter a verdict, unlabelled
  --parity-data images count for the disagreement only, unreadable ones are
  counted; comparisons use unrounded values;
- the invariant of issue 19: recomputed from a report's paired counts, the
  drop's upper end is never below Newcombe method 10 (corrected phi) or the
  exact bound on b / n, whichever is smaller; every interval holds its estimate.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta, binomtest

from edgedeploy.export import stats
from edgedeploy.export.gate import (
    Agreement,
    ClassEvidence,
    Evidence,
    GatePolicy,
    PairedCounts,
    agreement_needed,
    decide,
    decide_counts,
    evidence_needed,
    evidence_needed_counts,
    labelled_needed,
    levels,
)
from edgedeploy.export.parity import NO_LABEL, UNLABELLED, Reference, compare, evidence, load_parity_data


def _ev(b: int, c: int, n: int, dis: int, n_all: int, both_wrong: int = 0) -> Evidence:
    return Evidence(labelled=PairedCounts(n, b, c, both_wrong, n - c - both_wrong), agreement=Agreement(n_all, dis))


# -- verdicts on hand-built evidence -------------------------------------------------------------------
def test_one_flipped_image_of_80_is_not_a_rejection() -> None:
    ev = _ev(b=1, c=0, n=80, dis=1, n_all=80, both_wrong=20)
    v = decide(ev, "int8", GatePolicy("point"))
    assert not v.passed and "1.25 points > 1" in v.reason  # the old rule's false rejection
    v = decide(ev, "int8", GatePolicy("evidence"))
    assert v.verdict == "inconclusive" and v.passed and v.warning and "more images" in v.settle
    v = decide(ev, "int8", GatePolicy("strict"))
    assert not v.passed and "inconclusive under --gate strict" in v.reason


def test_damage_seen_in_disagreement_is_rejected_on_80_images() -> None:
    # grey-calibrated int8 on the photo run: 7.5 points lost, 14 of 80 answers changed
    ev = _ev(b=10, c=4, n=80, dis=14, n_all=80, both_wrong=15)
    v = decide(ev, "int8", GatePolicy())
    assert v.accuracy_drop.verdict == "inconclusive"  # the drop alone is not proven on 80 images
    assert v.verdict == "rejected" and not v.passed and "disagreement" in v.reason
    assert v.disagreement.lo > 5.0


def test_per_class_collapse_rejects() -> None:
    ok = ClassEvidence("cat", PairedCounts(500, 0, 0, 0, 480), Agreement(500, 0))
    bad = ClassEvidence("dog", PairedCounts(500, 60, 0, 0, 480), Agreement(500, 60))
    ev = Evidence(PairedCounts(1000, 60, 0, 0, 960), Agreement(1000, 60), [ok, bad])
    v = decide(ev, "int8", GatePolicy(max_accuracy_drop=5.0, max_disagreement=20.0))
    assert v.accuracy_drop.verdict == "inconclusive"  # 6 points overall: not proven above 5
    assert v.per_class["dog"]["verdict"] == "rejected" and v.per_class["cat"]["verdict"] == "accepted"
    assert v.verdict == "rejected" and "class 'dog'" in v.reason


def test_float_probability_rule_compares_unrounded_values() -> None:
    ev = _ev(0, 0, 1000, 0, 1000)
    ev.max_abs_prob_diff = 0.01
    assert "float32 model" in decide(ev, "none", GatePolicy()).reason
    assert decide(ev, "int8", GatePolicy()).passed
    ev.max_abs_prob_diff = 0.0010004  # 3 significant digits would make it 0.001, within the limit
    v = decide(ev, "none", GatePolicy(max_prob_diff=1e-3))
    assert not v.passed and v.verdict == "rejected" and "float32 model" in v.reason


def test_a_drop_proven_beyond_budget_is_rejected_however_narrow_its_interval() -> None:
    ev = _ev(b=300, c=0, n=20000, dis=300, n_all=20000, both_wrong=1000)  # 1.5 points on 20,000 images
    v = decide(ev, "int8", GatePolicy("strict"))
    assert 1.0 < v.accuracy_drop.lo and v.accuracy_drop.hi < 2.0
    assert v.accuracy_drop.verdict == "rejected" and v.verdict == "rejected" and v.reason.startswith("accuracy drop 1.50")


# -- the error model: levels, intersection-union, Bonferroni ---------------------------------------------
def test_levels_are_the_stated_ones() -> None:
    p = GatePolicy()
    assert p.alpha == pytest.approx(0.025)
    lv = levels(p, 10)
    assert lv.parts == 22 and lv.accept == pytest.approx(0.025) and lv.reject == pytest.approx(0.025 / 22)
    assert levels(p, 0).reject == pytest.approx(0.0125)


def test_acceptance_needs_every_part_proven() -> None:
    """Intersection-union: one part within budget and the other not proven leaves the file inconclusive."""
    drop_ok_dis_unknown = _ev(b=0, c=0, n=1000, dis=45, n_all=1000, both_wrong=100)  # 4.5% disagreement (budget 5)
    v = decide(drop_ok_dis_unknown, "int8", GatePolicy("strict"))
    assert (v.accuracy_drop.verdict, v.disagreement.verdict, v.verdict) == ("accepted", "inconclusive", "inconclusive")
    assert not v.passed
    dis_ok_drop_unknown = _ev(b=6, c=0, n=1000, dis=6, n_all=1000, both_wrong=100)
    v = decide(dis_ok_drop_unknown, "int8", GatePolicy("strict"))
    assert (v.accuracy_drop.verdict, v.disagreement.verdict, v.verdict) == ("inconclusive", "accepted", "inconclusive")
    assert not v.passed
    both = decide(_ev(b=0, c=0, n=1000, dis=0, n_all=1000, both_wrong=100), "int8", GatePolicy("strict"))
    assert both.verdict == "accepted" and both.passed


def test_drop_upper_end_is_the_95_percent_one() -> None:
    # Cavo et al. (2012), (59, 6, 16, 80): Newcombe's published upper end -0.0046 (contingencytables)
    # is above Tango's -0.0054, so the gate's upper end is -0.46 points.
    a, b, c, d = 59, 6, 16, 80
    v = decide(Evidence(PairedCounts(161, b, c, d, a + b), Agreement(161, b + c)), "int8", GatePolicy())
    assert round(v.accuracy_drop.hi, 2) == -0.46 and v.accuracy_drop.hi_confidence == pytest.approx(0.975)
    # the digits int8 file of issue 19 (1 of 539 lost): Newcombe's upper end is over 1 point: not proven
    v = decide(_ev(b=1, c=0, n=539, dis=1, n_all=539, both_wrong=4), "int8", GatePolicy("strict"))
    assert v.accuracy_drop.hi >= 100 * stats.paired_difference(534, 1, 0, 4).hi > 1.0
    assert v.verdict == "inconclusive" and not v.passed


def test_disagreement_bounds_are_exact() -> None:
    v = decide(_ev(0, 0, 1000, 0, 1000, both_wrong=10), "int8", GatePolicy())
    assert v.disagreement.hi == pytest.approx(100 * (1 - 0.025 ** (1 / 1000)), rel=1e-10)  # Wilson: 0.383
    v = decide(_ev(b=10, c=4, n=80, dis=14, n_all=80, both_wrong=15), "int8", GatePolicy())
    assert v.disagreement.lo == pytest.approx(100 * beta.ppf(0.0125, 14, 67), rel=1e-10)  # Bonferroni over 2 parts
    assert v.disagreement.hi == pytest.approx(100 * beta.ppf(0.975, 15, 66), rel=1e-10)


def _class_at_the_edge(p: GatePolicy, n: int, m: int) -> int:
    """A disagreement count whose 97.5% exact lower bound is over budget, but not its Bonferroni one."""
    for k in range(n):
        if stats.cp_lower(k, n, p.alpha) > p.max_disagreement / 100 >= stats.cp_lower(k, n, p.alpha / m):
            return k
    raise AssertionError("no such count")


def test_class_rejection_is_bonferroni_corrected() -> None:
    p = GatePolicy()
    names = [f"c{i}" for i in range(10)]
    k = _class_at_the_edge(p, 200, 22)
    classes = [ClassEvidence(nm, PairedCounts(200, 0, 0, 20, 180), Agreement(200, 0)) for nm in names[1:]]
    edge = ClassEvidence("c0", PairedCounts(200, 0, 0, 20, 180), Agreement(200, k))
    ev = Evidence(PairedCounts(2000, 0, 0, 200, 1800), Agreement(2000, k), [edge, *classes])
    v = decide(ev, "int8", p)
    assert v.per_class["c0"]["top1_disagreement"]["lo"] == pytest.approx(100 * float(stats.cp_lower(k, 200, p.alpha / 22)))
    assert v.per_class["c0"]["verdict"] != "rejected" and v.verdict != "rejected"
    # the same evidence without the correction would reject the file: a false rejection of a faithful one
    tables = [((np.array([180]), np.array([0]), np.array([0]), np.array([20])), (np.array([ce.agreement.disagreements]), np.array([200])))
              for ce in ev.per_class]
    total = ((np.array([1800]), np.array([0]), np.array([0]), np.array([200])), (np.array([k]), np.array([2000])))
    assert int(decide_counts(*total, p, tables, correct=False).verdict[0]) == -1
    assert int(decide_counts(*total, p, tables, correct=True).verdict[0]) != -1


def test_every_part_holds_its_estimate_on_the_hand_built_case_of_issue_19() -> None:
    """160 labelled images with 3 lost, 997 of 1,000 answers agreeing (840 of them training images):
    strict accepted it, and its printed interval missed its own estimate of 1.88 points."""
    ev = Evidence(PairedCounts(160, 3, 0, 40, 120), Agreement(160, 3), diagnosis=Agreement(840, 0))
    v = decide(ev, "int8", GatePolicy("strict"))
    assert not v.passed and v.verdict == "inconclusive"
    d = v.accuracy_drop
    assert d.estimate == pytest.approx(1.875) and d.lo <= d.estimate <= d.hi
    assert v.to_dict()["diagnosis_train"] == {"images": 840, "disagreements": 0}


# -- small evidence --------------------------------------------------------------------------------------
def test_evidence_needed_says_how_many_images() -> None:
    p = GatePolicy()
    need = evidence_needed(_ev(0, 0, 160, 0, 160, both_wrong=46), p)  # the photo run: 160 held-out images
    assert not need.enough and need.labelled == 160
    n = need.labelled_needed
    acc = (160 - 46) / 160

    def bound(m: int) -> float:
        a = round(acc * m)
        return float(stats.drop_upper(a, 0, 0, m - a, 0.025))

    assert bound(n) <= 0.01 < bound(n - 1)  # the smallest count that could prove 1 point with zero changes
    assert 370 < n < 420
    assert agreement_needed(p) == math.ceil(math.log(0.025) / math.log(0.95))  # 0 of n: 1 - 0.025**(1/n) <= 5%
    msg = need.message()
    assert f"{n:,} labelled held-out images are needed (there are 160)" in msg and "--parity-data DIR" in msg
    assert evidence_needed_counts(160, acc, 160, p) == need  # the same, before any file is gated
    assert evidence_needed(_ev(0, 0, 1000, 0, 1000, both_wrong=10), p).message() is None
    assert labelled_needed(0.9, GatePolicy(max_accuracy_drop=0.0)) is None
    assert "no number of images" in evidence_needed(_ev(0, 0, 160, 0, 160), GatePolicy(max_accuracy_drop=0.0)).message()


@pytest.mark.parametrize("acc", [0.5, 0.6, 0.9, 0.99])
def test_the_zero_change_bound_falls_with_more_images(acc: float) -> None:
    """labelled_needed's search assumes the bound falls as images are added."""
    ns = np.arange(50, 3000, 7)
    a = np.round(acc * ns).astype(int)
    hi = stats.drop_upper(a, 0, 0, ns - a, 0.025)
    assert np.all(np.diff(hi) <= 1e-12)


def test_unlabelled_agreement_cannot_prove_the_drop() -> None:
    """920 unlabelled images that agree prove the disagreement, not the drop of 80 labelled ones."""
    v = decide(_ev(b=0, c=0, n=80, dis=0, n_all=1000, both_wrong=20), "int8", GatePolicy("strict"))
    assert v.disagreement.verdict == "accepted" and v.accuracy_drop.verdict == "inconclusive" and not v.passed
    assert "--parity-data" in v.evidence_need.message()


# -- the evidence: held out, counted, unrounded -------------------------------------------------------------
def _reference(origin: list[str], labels: list[int], keras_top: list[int]) -> Reference:
    kp = np.eye(3, dtype=np.float32)[keras_top]
    return Reference(images=[np.zeros((2, 2, 3), np.uint8)] * len(labels), labels=np.array(labels),
                     label_names=["a", "b", "c"], keras_probs=kp, origin=np.array(origin))


def test_training_images_never_enter_a_verdict() -> None:
    origin = ["test"] * 4 + ["train"] * 6 + [UNLABELLED] * 2
    labels = [0, 1, 2, 0, 0, 1, 2, 0, 1, 2, NO_LABEL, NO_LABEL]
    keras = [0, 1, 2, 1, 0, 1, 2, 0, 1, 2, 0, 1]
    ref = _reference(origin, labels, keras)
    export = np.eye(3, dtype=np.float32)[[1, 1, 2, 1, 1, 1, 1, 0, 1, 2, 0, 2]]  # 1 held-out, 2 train, 1 unlabelled changed
    ev = evidence(export, ref)
    assert (ev.labelled.n, ev.labelled.keras_right_export_wrong, ev.labelled.keras_wrong_export_right) == (4, 1, 0)
    assert (ev.agreement.n, ev.agreement.disagreements) == (6, 2)  # 4 labelled + 2 unlabelled held-out
    assert (ev.diagnosis.n, ev.diagnosis.disagreements) == (6, 2)
    assert sum(ce.labelled.n for ce in ev.per_class) == 4 and sum(ce.agreement.n for ce in ev.per_class) == 4
    m = compare(export, ref)
    assert m["agreement_samples"] == 6 and m["top1_disagreements"] == 2 and m["parity_samples"] == 4
    assert m["diagnosis_train"]["images"] == 6 and m["evidence_images"] == {"test": 4, UNLABELLED: 2, "train": 6}
    assert m["paired_counts"] == {"n": 4, "keras_right_export_wrong": 1, "keras_wrong_export_right": 0, "both_wrong": 1}


def test_probability_differences_are_unrounded_and_held_out() -> None:
    ref = _reference(["test", "test", "train"], [0, 1, 2], [0, 1, 2])
    probs = ref.keras_probs.copy()
    probs[0, 0] -= 0.0012345678
    probs[2, 2] -= 0.5  # a train image: not in the figure
    m = compare(probs, ref)
    assert m["max_abs_prob_diff"] == pytest.approx(0.0012345678, rel=1e-4)  # float32 probabilities
    assert m["max_abs_prob_diff"] != float(f"{m['max_abs_prob_diff']:.3g}")
    assert evidence(probs, ref).max_abs_prob_diff == m["max_abs_prob_diff"]


def test_parity_data_images_labelled_unlabelled_and_unreadable(tmp_path: Path) -> None:
    from PIL import Image

    from edgedeploy.core.errors import EdgeDeployError

    d = tmp_path / "pd"
    (d / "cat").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(d / "cat" / f"{i}.png")
    Image.new("RGB", (4, 4)).save(d / "loose.png")
    (d / "broken.png").write_bytes(b"not a png")
    (d / "cat" / "truncated.jpg").write_bytes(b"\xff\xd8\xff")
    got = load_parity_data(d, ["cat", "dog"])
    assert len(got.labelled) == 2 and len(got.unlabelled) == 1 and got.unreadable == 2
    (d / "horse").mkdir()
    with pytest.raises(EdgeDeployError, match="subfolders named by the model's labels"):
        load_parity_data(d, ["cat", "dog"])
    ref = _reference(["test"], [0], [0])
    ref.unreadable = 2
    v = decide(evidence(ref.keras_probs, ref), "int8", GatePolicy())
    assert v.unreadable_parity_images == 2 and v.to_dict()["unreadable_parity_images"] == 2


def test_heldout_only_keeps_strict_honest_by_simulation() -> None:
    """Issue 19's simulation: 539 held-out images plus 461 train images that never disagree, true drop 1.1
    points. Counting the train images, strict accepted 16.7% of such files; held out only, at most 2.5%."""
    rng = np.random.default_rng(4)
    reps, n_held, n_train = 3000, 539, 461
    labels = np.zeros(n_held + n_train, np.int64)
    origin = np.array(["test"] * n_held + ["train"] * n_train)
    kp = np.zeros((n_held + n_train, 2), np.float32)
    kp[:, 0] = 1.0  # Keras right on every image except the both-wrong ones below
    tables = []
    for _ in range(reps):
        a, b, c, d = rng.multinomial(n_held, [0.8865, 0.0135, 0.0025, 0.0975])
        k = kp.copy()
        k[n_held - c - d: n_held] = [0.0, 1.0]  # Keras wrong on the c and d images
        e = k.copy()
        e[:b] = [0.0, 1.0]  # the file loses b images ...
        e[n_held - c - d: n_held - d] = [1.0, 0.0]  # ... and gains c
        ev = evidence(e, Reference([None] * len(labels), labels, ["x", "y"], k, origin))
        tables.append((*ev.labelled.table(), ev.agreement.disagreements, ev.agreement.n))
    t = np.array(tables).T
    assert (t[5] == n_held).all()  # the train images are not in the disagreement count
    dec = decide_counts(tuple(t[:4]), (t[4], t[5]), GatePolicy("strict"))
    assert np.mean(dec.verdict == 1) <= 0.025


# -- issue 19's invariant ---------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5000), st.floats(0.5, 0.999), st.floats(0.0, 0.05), st.floats(0.0, 0.05), st.integers(0, 2**31 - 1))
def test_reported_drop_upper_end_never_below_newcombe_or_exact(n: int, acc: float, pb: float, pc: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pc = min(pc, 1 - acc)
    a, b, c, d = (int(x) for x in rng.multinomial(n, [max(acc - pb, 0.0), min(pb, acc), pc, max(1 - acc - pc, 0.0)]))
    m = compare(*_probs_for(a, b, c, d))  # the report's figures, from images
    pcs = m["paired_counts"]
    n_, b_, c_, d_ = pcs["n"], pcs["keras_right_export_wrong"], pcs["keras_wrong_export_right"], pcs["both_wrong"]
    assert (n_, b_, c_, d_) == (n, b, c, d)
    v = decide(Evidence(PairedCounts(n_, b_, c_, d_, n_ - c_ - d_), Agreement(n_, b_ + c_)), "int8", GatePolicy())
    newcombe = 100 * stats.paired_difference(n_ - b_ - c_ - d_, b_, c_, d_).hi
    exact = 100 * binomtest(b_, n_).proportion_ci(0.95, method="exact").high
    assert v.accuracy_drop.hi >= min(newcombe, exact) - 1e-9
    for part in (v.accuracy_drop, v.disagreement):
        assert part.lo <= part.estimate <= part.hi
    assert v.accuracy_drop.estimate == pytest.approx(m["accuracy_drop"], abs=1e-9)


def _probs_for(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, Reference]:
    """Images with Keras's and the file's answers making the table (a, b, c, d)."""
    n = a + b + c + d
    labels = np.zeros(n, np.int64)
    keras = np.array([0] * (a + b) + [1] * (c + d))
    export = np.array([0] * a + [1] * b + [0] * c + [1] * d)
    ref = Reference([None] * n, labels, ["x", "y"], np.eye(2, dtype=np.float32)[keras])
    return np.eye(2, dtype=np.float32)[export], ref


# -- the records' own parts ----------------------------------------------------------------------------------
def test_counts_scale_and_give_their_intervals() -> None:
    pc = PairedCounts(80, 2, 1, 20, 61)
    assert pc.table() == (57, 2, 1, 20) and pc.both_right == 57 and pc.drop == pytest.approx(1 / 80)
    assert pc.scaled(800) == PairedCounts(800, 20, 10, 200, 610)
    assert PairedCounts(10, 5, 5, 5, 10).scaled(10).table()[0] >= 0  # d is cut so that a stays >= 0
    assert pc.interval() == stats.drop_interval(57, 2, 1, 20)
    assert Agreement(80, 3).scaled(400) == Agreement(400, 15)
    assert Agreement(80, 3).interval() == stats.clopper_pearson(3, 80)


def test_settle_counts_the_images_that_would_decide() -> None:
    ev = _ev(b=1, c=0, n=80, dis=1, n_all=80, both_wrong=20)
    p = GatePolicy()
    v = decide(ev, "int8", p)
    more = int(v.settle.split("about ")[1].split(" more")[0].replace(",", ""))
    lv = levels(p, 0)

    def decides(m: int) -> bool:  # the drop at the same rates (1.25%), on m images
        b, d = round(m / 80), round(20 * m / 80)
        lo = float(stats.drop_lower(m - b - d, b, 0, d, lv.reject))
        hi = float(stats.drop_upper(m - b - d, b, 0, d, lv.accept))
        dis_lo, dis_hi = float(stats.cp_lower(b, m, lv.reject)), float(stats.cp_upper(b, m, lv.accept))
        return lo > 0.01 or (hi <= 0.01 and dis_hi <= 0.05) or dis_lo > 0.05

    assert decides(80 + more) and not decides(80 + more - 1)


def test_verdict_dict_holds_the_error_model() -> None:
    ref = _reference(["test"] * 3 + ["train"], [0, 1, 2, 0], [0, 1, 2, 1])
    ref.unreadable = 1
    v = decide(evidence(ref.keras_probs, ref), "int8", GatePolicy())
    d = v.to_dict()
    assert d["levels"] == {"upper_bound_confidence": pytest.approx(0.975), "parts": 8,
                           "lower_bound_confidence": pytest.approx(1 - 0.025 / 8), "multiplicity": levels(GatePolicy(), 3).to_dict()["multiplicity"]}
    assert "Bonferroni" in d["levels"]["multiplicity"] and "Holm" in d["levels"]["multiplicity"]
    assert "Newcombe" in d["method"]["accuracy_drop"] and "Clopper-Pearson" in d["method"]["top1_disagreement"]
    assert d["evidence_need"]["labelled"] == 3 and d["evidence_need"]["enough"] is False and "--parity-data" in d["evidence_need"]["message"]
    assert d["diagnosis_train"] == {"images": 1, "disagreements": 0} and d["unreadable_parity_images"] == 1
    assert d["accuracy_drop"] == v.accuracy_drop.to_dict() and d["accuracy_drop"]["hi_confidence"] == pytest.approx(0.975)
    assert d["verdict"] == "inconclusive" and d["passed"] is True and d["settle"] == v.settle and d["warning"] == v.warning
    assert "reason" not in d and d["per_class"]["a"]["labelled_samples"] == 1
    assert v.accuracy_drop.interval_text().startswith("[") and v.disagreement.interval_text(1).endswith("]")


def test_evidence_need_boundaries() -> None:
    p = GatePolicy()
    n, k = labelled_needed(0.9, p), agreement_needed(p)
    assert evidence_needed_counts(n, 0.9, k, p).enough and evidence_needed_counts(n, 0.9, k, p).message() is None
    short = evidence_needed_counts(n - 1, 0.9, k - 1, p)
    msg = short.message()
    assert not short.enough and f"{n:,} labelled held-out images are needed (there are {n - 1:,})" in msg
    assert f"proving a disagreement <= 5%: {k:,} held-out images are needed (there are {k - 1:,})" in msg
    only_dis = evidence_needed_counts(n, 0.9, k - 1, p).message()
    assert "accuracy drop" not in only_dis and "disagreement" in only_dis
    assert short.to_dict()["message"] == msg and short.to_dict()["labelled_needed"] == n
