"""export/stats.py and export/gate.py against brute force, on synthetic counts (no TensorFlow).

- Clopper-Pearson bounds equal the roots found by summing binomial
  probabilities term by term (math.comb) on a fine grid;
- Wilson bounds equal the set of rates the score test does not reject, found
  by scanning a grid;
- the gate's drop interval and the disagreement interval hold their 95%
  promise: on simulated paired outcomes with known rates, each end misses the
  true value at most about 2.5% of the time;
- the verdicts: one flipped image of 80 is not a rejection; 14 disagreements
  of 80 (the grey-calibrated int8 file) are; zero disagreements in 1,000
  images prove a drop under 1 point.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgedeploy.export import stats
from edgedeploy.export.gate import Agreement, ClassEvidence, Evidence, GatePolicy, PairedCounts, decide


def _binom_le(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _grid_root(f, lo: float = 0.0, hi: float = 1.0, steps: int = 20000) -> float:
    """The first grid point where the increasing f turns non-negative."""
    for i in range(steps + 1):
        p = lo + (hi - lo) * i / steps
        if f(p) >= 0:
            return p
    return hi


@pytest.mark.parametrize("k, n", [(0, 10), (1, 10), (5, 10), (10, 10), (14, 80), (1, 80), (3, 600), (0, 1000)])
def test_clopper_pearson_matches_brute_force(k: int, n: int) -> None:
    iv = stats.clopper_pearson(k, n)
    lo = 0.0 if k == 0 else _grid_root(lambda p: (1 - _binom_le(k - 1, n, p)) - 0.025)
    hi = 1.0 if k == n else _grid_root(lambda p: 0.025 - _binom_le(k, n, p))
    assert iv.lo == pytest.approx(lo, abs=1e-4) and iv.hi == pytest.approx(hi, abs=1e-4)
    assert iv.lo <= k / n <= iv.hi


@pytest.mark.parametrize("k, n", [(0, 20), (3, 20), (10, 20), (20, 20), (7, 160)])
def test_wilson_matches_the_score_test_by_grid(k: int, n: int) -> None:
    z = 1.959963984540054
    grid = np.linspace(0, 1, 200001)
    keep = grid[np.abs(k / n - grid) <= z * np.sqrt(grid * (1 - grid) / n)]
    iv = stats.wilson(k, n)
    assert iv.lo == pytest.approx(keep.min(), abs=1e-4) and iv.hi == pytest.approx(keep.max(), abs=1e-4)


def test_normal_quantile_and_binomial_cdf() -> None:
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-9)
    assert stats.normal_quantile(0.001) == pytest.approx(-3.090232306167813, abs=1e-8)
    for k, n, p in [(0, 5, 0.3), (3, 20, 0.1), (40, 80, 0.55), (79, 80, 0.99)]:
        assert stats.binom_cdf(k, n, p) == pytest.approx(_binom_le(k, n, p), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("n, pb, pc, pd", [(80, 0.02, 0.0, 0.3), (160, 0.015, 0.0, 0.3), (160, 0.01, 0.005, 0.3),
                                           (300, 0.03, 0.01, 0.02), (500, 0.012, 0.002, 0.01)])
def test_drop_interval_coverage_by_simulation(n: int, pb: float, pc: float, pd: float) -> None:
    rng = np.random.default_rng(1)
    draws = rng.multinomial(n, [pb, pc, pd, 1 - pb - pc - pd], size=2000)
    true = pb - pc
    cache: dict = {}
    miss_hi = miss_lo = 0
    for b, c, d, _ in draws:
        key = (int(b), int(c), int(d))
        if key not in cache:
            cache[key] = stats.drop_interval(*key[:2], n, key[2])
        iv = cache[key]
        miss_hi += iv.hi < true
        miss_lo += iv.lo > true
    # 2.5% per side, plus Monte Carlo slack (2,000 draws: sd 0.35%)
    assert miss_hi / len(draws) <= 0.037 and miss_lo / len(draws) <= 0.037


def test_newcombe_upper_end_alone_would_be_too_optimistic() -> None:
    """Why drop_interval does not use it: with c = 0 it misses far more often than 2.5%."""
    rng = np.random.default_rng(2)
    draws = rng.multinomial(80, [0.02, 0.0, 0.3, 0.68], size=2000)
    miss = sum(stats.paired_difference(int(b), int(c), 80, int(d)).hi < 0.02 for b, c, d, _ in draws)
    assert miss / len(draws) > 0.08


def _ev(b: int, c: int, n: int, dis: int, n_all: int, both_wrong: int = 0) -> Evidence:
    return Evidence(labelled=PairedCounts(n, b, c, both_wrong, n - b - both_wrong),
                    agreement=Agreement(n_all, dis))


def test_one_flipped_image_of_80_is_not_a_rejection() -> None:
    ev = _ev(b=1, c=0, n=80, dis=1, n_all=80, both_wrong=20)
    for policy in ("evidence", "point"):
        v = decide(ev, "int8", GatePolicy(policy))
        if policy == "point":
            assert not v.passed and "1.25 points > 1" in v.reason  # the old rule's false rejection
        else:
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


def test_many_agreeing_images_prove_a_small_drop_with_few_labels() -> None:
    ev = _ev(b=0, c=0, n=80, dis=0, n_all=1000, both_wrong=20)
    v = decide(ev, "int8", GatePolicy("strict"))
    assert v.verdict == "accepted" and v.passed and v.accuracy_drop.hi < 0.37


def test_per_class_collapse_rejects() -> None:
    ok = ClassEvidence("cat", PairedCounts(500, 0, 0, 0, 480), Agreement(500, 0))
    bad = ClassEvidence("dog", PairedCounts(500, 60, 0, 0, 480), Agreement(500, 60))
    ev = Evidence(PairedCounts(1000, 60, 0, 0, 960), Agreement(1000, 60), [ok, bad])
    v = decide(ev, "int8", GatePolicy(max_accuracy_drop=5.0, max_disagreement=20.0))
    assert v.accuracy_drop.verdict == "inconclusive"  # 6 points overall: not proven above 5
    assert v.per_class["dog"]["verdict"] == "rejected" and v.per_class["cat"]["verdict"] == "accepted"
    assert v.verdict == "rejected" and "class 'dog'" in v.reason


def test_float_probability_rule_still_applies() -> None:
    ev = _ev(0, 0, 1000, 0, 1000)
    ev.max_abs_prob_diff = 0.01
    assert "float32 model" in decide(ev, "none", GatePolicy()).reason
    assert decide(ev, "int8", GatePolicy()).passed


def test_images_to_settle_is_the_smallest_deciding_count() -> None:
    need = stats.images_to_settle(lambda m: stats.clopper_pearson(0, m).hi <= 0.01, 80)
    assert stats.clopper_pearson(0, need).hi <= 0.01 < stats.clopper_pearson(0, need - 1).hi
    assert stats.images_to_settle(lambda m: False, 10, limit=1000) is None
