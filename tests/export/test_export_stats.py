"""export/stats.py against published values, brute force and simulation (no TensorFlow).

Published values pinned here, each with its source:

- Bentur et al. (2009), airway hyper-responsiveness before/after stem cell
  transplantation, paired table (a, b, c, d) = (1, 1, 7, 12): Newcombe's
  method 10 gives (-0.507, -0.026) for p1 - p2 = (b - c) / n. Source: the R
  package contingencytables (Fagerland, Lydersen & Laake, "Statistical
  Analysis of Contingency Tables", 2017, chapter 8),
  ``Newcombe_square_and_add_CI_paired_2x2(rbind(c(1,1), c(7,12)))``, and
  biostatUZH ``confIntPairedProportion`` on the same table (both quoted in
  issue 19). The table in R is ``n[1,1] = a``, ``n[1,2] = b``, ``n[2,1] = c``,
  ``n[2,2] = d`` and the estimate ``(n11 + n12)/N - (n11 + n21)/N = (b - c)/N``:
  the same orientation as our drop (reference right only minus candidate
  right only). Its phi: 0.0795 uncorrected, 0 corrected (ratesci vignette
  "paired_contrasts", ``scorepairci(c(1, 1, 7, 12))`` prints
  ``phi_hat 0.0795, phi_c 0``). Without the correction the interval is
  (-0.502, -0.036) (issue 19: what the old code gave).
- Cavo et al. (2012), complete response before/after consolidation therapy,
  (59, 6, 16, 80): Newcombe method 10 estimate -0.0621, 95% CI
  (-0.1186, -0.0046); Tango's asymptotic score CI (-0.1240, -0.0054).
  Source: contingencytables, tests/testthat/test-ch8.R (expected printed
  outputs of ``Newcombe_square_and_add_CI_paired_2x2`` and
  ``Tango_asymptotic_score_CI_paired_2x2``).
- Newcombe (1998), Statistics in Medicine 17:2635-2650, worked example (a)
  of its Table II, (36, 12, 2, 0): method 10 gives 0.0569 to 0.3404.
- Clopper-Pearson: 14 of 80 gives [9.9, 27.6]% (export/README.md, the
  grey-calibrated int8 file), checked against a term-by-term binomial sum
  and ``scipy.stats.binomtest``; 0 of n has the closed form ``1 - alpha**(1/n)``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from edgedeploy.export import stats

BENTUR = (1, 1, 7, 12)
CAVO = (59, 6, 16, 80)
NEWCOMBE_A = (36, 12, 2, 0)


def _binom_le(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _grid_root(f, lo: float = 0.0, hi: float = 1.0, steps: int = 20000) -> float:
    """The first grid point where the increasing f turns non-negative."""
    for i in range(steps + 1):
        p = lo + (hi - lo) * i / steps
        if f(p) >= 0:
            return p
    return hi


# -- published values ------------------------------------------------------------------------------
def test_newcombe_bentur_published() -> None:
    iv = stats.paired_difference(*BENTUR)
    assert iv.estimate == pytest.approx(-6 / 21)
    assert (round(iv.lo, 3), round(iv.hi, 3)) == (-0.507, -0.026)


def test_newcombe_phi_is_corrected_bentur() -> None:
    # ratesci: phi_hat 0.0795 (uncorrected), phi_c 0: ad - bc = 5 is within n/2 = 10.5
    a, b, c, d = BENTUR
    raw = (a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    assert round(raw, 4) == 0.0795
    assert float(stats.newcombe_phi(*BENTUR)) == 0.0


def test_newcombe_without_the_correction_is_not_newcombe() -> None:
    """(-0.502, -0.036) is what the uncorrected phi gives (issue 19); the published interval differs."""
    iv = stats.paired_difference(*BENTUR)
    assert (round(iv.lo, 3), round(iv.hi, 3)) != (-0.502, -0.036)


def test_newcombe_cavo_published() -> None:
    iv = stats.paired_difference(*CAVO)
    assert round(iv.estimate, 4) == -0.0621
    assert (round(iv.lo, 4), round(iv.hi, 4)) == (-0.1186, -0.0046)
    # its corrected phi: (59*80 - 6*16 - 161/2) / sqrt(65*96*75*86)
    assert float(stats.newcombe_phi(*CAVO)) == pytest.approx((59 * 80 - 6 * 16 - 80.5) / math.sqrt(65 * 96 * 75 * 86))


def test_newcombe_1998_table_ii_example_a() -> None:
    iv = stats.paired_difference(*NEWCOMBE_A)
    assert iv.estimate == pytest.approx(0.2)
    assert (round(iv.lo, 4), round(iv.hi, 4)) == (0.0569, 0.3404)
    assert float(stats.newcombe_phi(*NEWCOMBE_A)) < 0  # a negative phi is used as it is


def test_tango_cavo_published() -> None:
    iv = stats.tango(*CAVO)
    assert round(iv.estimate, 4) == -0.0621
    assert (round(iv.lo, 4), round(iv.hi, 4)) == (-0.1240, -0.0054)


def test_tango_bounds_solve_the_score_equation() -> None:
    for a, b, c, d in (BENTUR, CAVO, NEWCOMBE_A, (990, 3, 1, 6), (70, 0, 0, 30)):
        n = a + b + c + d
        iv = stats.tango(a, b, c, d)
        z = stats.z_value(0.025)
        assert float(stats.tango_statistic(b, c, n, iv.lo)) == pytest.approx(z, abs=1e-6)
        assert float(stats.tango_statistic(b, c, n, iv.hi)) == pytest.approx(-z, abs=1e-6)
    # no discordant image: Tango's bounds are +-z^2 / (n + z^2) (its score variance is delta (1 - delta))
    z2 = stats.z_value(0.025) ** 2
    assert stats.tango(70, 0, 0, 30).hi == pytest.approx(z2 / (100 + z2), rel=1e-9)


def test_drop_interval_is_the_union() -> None:
    for t in (BENTUR, CAVO, NEWCOMBE_A, (500, 2, 0, 98), (90, 0, 3, 7)):
        u, nw, tg = stats.drop_interval(*t), stats.paired_difference(*t), stats.tango(*t)
        assert u.lo == min(nw.lo, tg.lo) and u.hi == max(nw.hi, tg.hi) and u.estimate == nw.estimate
    # Cavo: the upper end is Newcombe's (-0.0046), the lower end Tango's (-0.1240)
    iv = stats.drop_interval(*CAVO)
    assert (round(iv.lo, 4), round(iv.hi, 4)) == (-0.1240, -0.0046)


# -- one rate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, n", [(0, 10), (1, 10), (5, 10), (10, 10), (14, 80), (1, 80), (3, 600), (0, 1000)])
def test_clopper_pearson_matches_brute_force_and_scipy(k: int, n: int) -> None:
    iv = stats.clopper_pearson(k, n)
    lo = 0.0 if k == 0 else _grid_root(lambda p: (1 - _binom_le(k - 1, n, p)) - 0.025)
    hi = 1.0 if k == n else _grid_root(lambda p: 0.025 - _binom_le(k, n, p))
    assert iv.lo == pytest.approx(lo, abs=1e-4) and iv.hi == pytest.approx(hi, abs=1e-4)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert iv.lo == pytest.approx(ref.low, abs=1e-12) and iv.hi == pytest.approx(ref.high, abs=1e-12)
    assert iv.lo <= k / n <= iv.hi


def test_clopper_pearson_published_and_closed_form() -> None:
    iv = stats.clopper_pearson(14, 80)
    assert (round(100 * iv.lo, 1), round(100 * iv.hi, 1)) == (9.9, 27.6)
    for n in (80, 1000, 5000):
        assert stats.clopper_pearson(0, n).hi == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-12)
    assert float(stats.cp_upper(0, 1000, 0.025)) < float(stats.wilson_bounds(0, 1000, 1.959963984540054)[1])


@pytest.mark.parametrize("k, n", [(0, 20), (3, 20), (10, 20), (20, 20), (7, 160)])
def test_wilson_matches_the_score_test_by_grid(k: int, n: int) -> None:
    z = 1.959963984540054
    grid = np.linspace(0, 1, 200001)
    keep = grid[np.abs(k / n - grid) <= z * np.sqrt(grid * (1 - grid) / n)]
    iv = stats.wilson(k, n)
    assert iv.lo == pytest.approx(keep.min(), abs=1e-4) and iv.hi == pytest.approx(keep.max(), abs=1e-4)


def test_quantiles_and_levels() -> None:
    assert stats.z_value(0.025) == pytest.approx(1.959963984540054, abs=1e-12)
    assert stats.z_value(0.001) == pytest.approx(3.090232306167813, abs=1e-10)
    assert stats.alpha_of(0.95) == pytest.approx(0.025) and stats.alpha_of(0.90) == pytest.approx(0.05)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError):
            stats.alpha_of(bad)


def test_counts_are_checked() -> None:
    for args in [(-1, 1, 1, 1), (1.5, 1, 1, 1), (True, 1, 1, 1)]:
        with pytest.raises(ValueError):
            stats.paired_difference(*args)
    with pytest.raises(ValueError):
        stats.clopper_pearson(3, 2)
    assert stats.paired_difference(0, 0, 0, 0) == stats.Interval(0.0, -1.0, 1.0)
    assert stats.clopper_pearson(0, 0) == stats.Interval(0.0, 0.0, 1.0)


def test_interval_holds_its_estimate_and_rounds_outward() -> None:
    with pytest.raises(ValueError):
        stats.Interval(0.5, 0.6, 0.9)
    iv = stats.Interval(0.01234, 0.001234, 0.015671)
    s = iv.scaled(100, 2)
    assert s == {"estimate": 1.23, "lo": 0.12, "hi": 1.57}  # lo floored, hi ceiled
    assert stats.floor_to(-0.4567, 2) == -0.46 and stats.ceil_to(-0.4567, 2) == -0.45


# -- verdicts ---------------------------------------------------------------------------------------
def test_verdict_rule() -> None:
    assert stats.verdict(-0.2, 0.9, 1.0) == stats.ACCEPTED
    assert stats.verdict(-0.2, 1.0, 1.0) == stats.ACCEPTED  # at the budget is within it
    assert stats.verdict(1.2, 1.5, 1.0) == stats.REJECTED  # proven beyond, however narrow
    assert stats.verdict(1.0, 3.0, 1.0) == stats.INCONCLUSIVE  # lo at the budget is not beyond it
    assert stats.verdict(0.5, 1.5, 1.0) == stats.INCONCLUSIVE
    codes = stats.verdict_codes([0.1, 1.2, 0.5], [0.9, 2.5, 1.5], 1.0)
    assert codes.tolist() == [1, -1, 0]


def test_combine() -> None:
    ok, bad, unsure = stats.ACCEPTED, stats.REJECTED, stats.INCONCLUSIVE
    assert stats.combine([ok, ok]) == ok
    assert stats.combine([ok, unsure]) == unsure and stats.combine([unsure, ok]) == unsure
    assert stats.combine([ok, bad]) == bad and stats.combine([unsure, bad]) == bad
    assert stats.combine([unsure, unsure]) == unsure


def test_images_to_settle_is_the_smallest_deciding_count() -> None:
    need = stats.images_to_settle(lambda m: stats.clopper_pearson(0, m).hi <= 0.01, 80)
    assert stats.clopper_pearson(0, need).hi <= 0.01 < stats.clopper_pearson(0, need - 1).hi
    assert stats.images_to_settle(lambda m: False, 10, limit=1000) is None
    assert stats.smallest_count(lambda m: m >= 37) == 37 and stats.smallest_count(lambda m: True) == 1


# -- simulation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, pb, pc, pd", [(160, 0.015, 0.0, 0.3), (300, 0.03, 0.01, 0.02), (500, 0.012, 0.002, 0.01),
                                           (1000, 0.011, 0.0, 0.4), (2000, 0.0135, 0.0025, 0.0075)])
def test_drop_interval_one_sided_coverage(n: int, pb: float, pc: float, pd: float) -> None:
    """Each end of the gate's drop interval misses the true drop at most about 2.5% of the time."""
    rng = np.random.default_rng(1)
    reps = 20000
    a, b, c, d = rng.multinomial(n, [1 - pb - pc - pd, pb, pc, pd], size=reps).T
    true = pb - pc
    lo, hi = stats.drop_lower(a, b, c, d, 0.025), stats.drop_upper(a, b, c, d, 0.025)
    slack = 3 * math.sqrt(0.025 * 0.975 / reps)
    assert np.mean(hi < true) <= 0.025 + slack and np.mean(lo > true) <= 0.025 + slack


def test_newcombe_upper_end_alone_misses_too_often() -> None:
    """Why the gate takes the union: with few images changing, Newcombe's upper end alone misses
    the true drop far more often than 2.5% (n = 2000, accuracy 0.6, the file never gains an image)."""
    rng = np.random.default_rng(2)
    a, b, c, d = rng.multinomial(2000, [0.589, 0.011, 0.0, 0.4], size=20000).T
    assert np.mean(stats.newcombe_upper(a, b, c, d, 0.025) < 0.011) > 0.035
    assert np.mean(stats.drop_upper(a, b, c, d, 0.025) < 0.011) < 0.025


def test_vectorized_bounds_equal_the_scalar_intervals() -> None:
    rng = np.random.default_rng(3)
    t = rng.multinomial(300, [0.8, 0.02, 0.01, 0.17], size=50)
    a, b, c, d = t.T
    lo, hi = stats.drop_lower(a, b, c, d, 0.025), stats.drop_upper(a, b, c, d, 0.025)
    for i, row in enumerate(t):
        iv = stats.drop_interval(*(int(x) for x in row))
        assert (iv.lo, iv.hi) == (lo[i], hi[i])


# -- edges the mutation run pointed at ---------------------------------------------------------------
def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="must contain its estimate"):
        stats.Interval(0.5, 0.6, 0.9)
    for k, n in [(-1, 5), (1.0, 5), (True, 5), (2, -1), (6, 5)]:
        with pytest.raises(ValueError, match="0 <= k <= n"):
            stats.clopper_pearson(k, n)
        with pytest.raises(ValueError, match="0 <= k <= n"):
            stats.wilson(k, n)
    with pytest.raises(ValueError, match="paired table of integer counts"):
        stats.tango(0, -1, 0, 0)
    with pytest.raises(ValueError, match="one-sided level"):
        stats.z_value(0.5)
    with pytest.raises(ValueError, match="confidence"):
        stats.alpha_of(1.0)


def test_tables_of_one_image_and_none() -> None:
    for f in (stats.paired_difference, stats.tango, stats.drop_interval):
        lost = f(0, 1, 0, 0)  # the one image lost
        assert lost.estimate == 1.0 and lost.hi == 1.0 and lost.lo < 1.0
        gained = f(0, 0, 1, 0)
        assert gained.estimate == -1.0 and gained.lo == -1.0 and gained.hi > -1.0
        same = f(1, 0, 0, 0)
        assert same.estimate == 0.0 and same.lo < 0.0 < same.hi
        assert f(0, 0, 0, 0) == stats.Interval(0.0, -1.0, 1.0)
    assert stats.wilson(0, 0) == stats.Interval(0.0, 0.0, 1.0)
    assert stats.wilson(1, 1).hi == 1.0 and stats.wilson(0, 1).lo == 0.0


def test_scaled_and_scale_count() -> None:
    iv = stats.Interval(0.012345, 0.0012345, 0.0156711)
    assert iv.scaled(100) == {"estimate": 1.234, "lo": 0.123, "hi": 1.568}  # 3 digits by default
    assert stats.scale_count(3, 10, 100) == 30 and stats.scale_count(1, 3, 10) == 3 and stats.scale_count(2, 0, 50) == 0


def test_outward_rounding_of_exact_decimals_and_settle_starts_after_n() -> None:
    # 0.12 * 100 is 11.999999999999998 in floating point, 0.29 * 100 is 28.999999999999996
    assert stats.floor_to(0.12, 2) == 0.12 and stats.ceil_to(0.12, 2) == 0.12
    assert stats.floor_to(0.29, 2) == 0.29 and stats.ceil_to(0.29, 2) == 0.29
    assert stats.images_to_settle(lambda m: m >= 81, 80) == 81  # the first count past n
    assert stats.images_to_settle(lambda m: m >= 2, 1) == 2 and stats.images_to_settle(lambda m: m >= 2, 0) == 2
