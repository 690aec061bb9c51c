"""The statistics of the parity gate: pure functions on counts, backed by scipy.

Everything here works on counts (integers), so it can be checked against
published values, a brute-force computation and simulation, without the
export around it. The bound functions take numpy arrays as well as scalars,
so ``export/coverage.py`` can run the gate's own rule on many simulated
tables at once.

- ``clopper_pearson(k, n)``: the exact interval of a binomial rate (the top-1
  disagreement rate: k of n images answered differently); ``beta.ppf``.
- ``wilson(k, n)``: the score interval of a rate (a building block of
  Newcombe's method).
- ``paired_difference(a, b, c, d)``: Newcombe (1998) method 10 with the
  corrected phi, the interval of ``(b - c) / n`` from a paired 2x2 table:
  ``a`` both right, ``b`` reference right only, ``c`` candidate right only,
  ``d`` both wrong. Newcombe's difference is ``p1 - p2`` with ``p1 = (a+b)/n``
  the reference's accuracy and ``p2 = (a+c)/n`` the candidate's: the *drop*,
  positive when the candidate is worse.
- ``tango(a, b, c, d)``: Tango's (1998) asymptotic score interval of the same
  difference.
- ``drop_interval(a, b, c, d)``: what the gate uses, the union of the two:
  lower end ``min``, upper end ``max``. Simulation over the gate's regime
  (n 100 to 5,000, accuracy 0.6 to 0.99, few discordant images;
  ``reports/gate_coverage.md``) shows Newcombe's upper end alone missing the
  true drop up to 5% of the time where 2.5% is promised (with ``c = 0`` it
  is about ``1.96 / n`` wide, an exact bound is ``3.69 / n``); Tango's stays
  near 2.5%. The union is never narrower than either, so it keeps Newcombe's
  guarantees and Tango's.
- ``verdict(lo, hi, budget)``: accepted when the interval is within the
  budget, rejected when it is beyond it, else inconclusive; ``combine``.
- ``images_to_settle`` / ``smallest_count``: how many images would decide.

Rates and differences are fractions (0..1) here; the gate turns them into
points and percent. Levels are one-sided tail probabilities (``alpha``): a
two-sided 95% interval is two one-sided bounds at ``alpha = 0.025``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats as _sp

CONFIDENCE = 0.95
ACCEPTED, REJECTED, INCONCLUSIVE = "accepted", "rejected", "inconclusive"
# Verdict codes of the vectorized rule (``verdict_codes``, ``combine_codes``).
CODES = {REJECTED: -1, INCONCLUSIVE: 0, ACCEPTED: 1}
NAMES = {v: k for k, v in CODES.items()}
DROP_METHOD = ("union of Newcombe (1998) method 10 with the corrected phi and Tango's (1998) score interval "
               "(lower end: the lower of the two; upper end: the higher)")
RATE_METHOD = "Clopper-Pearson exact interval (scipy beta quantiles)"
_BISECT_STEPS = 64  # halvings of [-1, 1]: far below float resolution


@dataclass(frozen=True)
class Interval:
    """A point estimate and the interval around it (fractions); ``lo <= estimate <= hi`` always."""

    estimate: float
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo <= self.estimate <= self.hi:
            raise ValueError(f"an interval must contain its estimate, got {self.estimate!r} in [{self.lo!r}, {self.hi!r}]")

    def scaled(self, factor: float, digits: int = 3) -> dict[str, float]:
        """``{"estimate", "lo", "hi"}`` times ``factor`` for display: rounded outward, so it still holds the estimate."""
        return {"estimate": round(self.estimate * factor, digits), "lo": floor_to(self.lo * factor, digits),
                "hi": ceil_to(self.hi * factor, digits)}


def floor_to(x: float, digits: int) -> float:
    """``x`` rounded down to ``digits`` decimals (a lower bound shown rounded stays a lower bound)."""
    f = 10.0**digits
    return math.floor(x * f + 1e-9) / f


def ceil_to(x: float, digits: int) -> float:
    """``x`` rounded up to ``digits`` decimals (an upper bound shown rounded stays an upper bound)."""
    f = 10.0**digits
    return math.ceil(x * f - 1e-9) / f


def alpha_of(confidence: float) -> float:
    """The one-sided tail of a two-sided interval at ``confidence`` (0.95 -> 0.025)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"expected 0 < confidence < 1, got {confidence!r}")
    return (1.0 - confidence) / 2.0


def z_value(alpha: float) -> float:
    """The normal quantile of a one-sided bound at level ``alpha`` (0.025 -> 1.95996)."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"expected a one-sided level 0 < alpha < 0.5, got {alpha!r}")
    return float(_sp.norm.ppf(1.0 - alpha))


def _is_count(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def _check_counts(k: int, n: int) -> None:
    if not (_is_count(k) and _is_count(n)) or k > n:
        raise ValueError(f"expected integer counts 0 <= k <= n, got k={k!r}, n={n!r}")


def _check_table(a: int, b: int, c: int, d: int) -> None:
    if not all(_is_count(v) for v in (a, b, c, d)):
        raise ValueError(f"expected a paired table of integer counts >= 0, got a={a!r}, b={b!r}, c={c!r}, d={d!r}")


def _arr(*xs: Any) -> list[np.ndarray]:
    return [np.asarray(x, dtype=np.float64) for x in np.broadcast_arrays(*xs)]


# -- one rate: Clopper-Pearson and Wilson --------------------------------------------
def cp_lower(k: Any, n: Any, alpha: float) -> np.ndarray:
    """Exact one-sided lower bound of a binomial rate at level ``alpha`` (0 when k = 0)."""
    k, n = _arr(k, n)
    safe = k > 0
    q = _sp.beta.ppf(alpha, np.where(safe, k, 1.0), np.where(safe, n - k + 1.0, 1.0))
    return np.where(safe, q, 0.0)


def cp_upper(k: Any, n: Any, alpha: float) -> np.ndarray:
    """Exact one-sided upper bound of a binomial rate at level ``alpha`` (1 when k = n, or n = 0)."""
    k, n = _arr(k, n)
    safe = k < n
    q = _sp.beta.ppf(1.0 - alpha, np.where(safe, k + 1.0, 1.0), np.where(safe, n - k, 1.0))
    return np.where(safe, q, 1.0)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Exact (Clopper-Pearson) interval of a binomial rate: each end misses at most ``(1 - confidence) / 2``.

    With n = 0 the interval is [0, 1].
    """
    _check_counts(k, n)
    alpha = alpha_of(confidence)
    if n == 0:
        return Interval(0.0, 0.0, 1.0)
    return Interval(k / n, float(cp_lower(k, n, alpha)), float(cp_upper(k, n, alpha)))


def wilson_bounds(k: Any, n: Any, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds of a rate at normal quantile ``z`` (no continuity correction); [0, 1] when n = 0."""
    k, n = _arr(k, n)
    m = np.where(n > 0, n, 1.0)
    p = k / m
    den = 1.0 + z * z / m
    centre = (p + z * z / (2.0 * m)) / den
    half = z * np.sqrt(p * (1.0 - p) / m + z * z / (4.0 * m * m)) / den
    lo = np.where(n > 0, np.clip(centre - half, 0.0, p), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, p, 1.0), 1.0)
    return lo, hi


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of a binomial rate."""
    _check_counts(k, n)
    if n == 0:
        return Interval(0.0, 0.0, 1.0)
    lo, hi = wilson_bounds(k, n, z_value(alpha_of(confidence)))
    return Interval(k / n, float(lo), float(hi))


# -- the paired difference: Newcombe (1998) method 10 ---------------------------------
def newcombe_phi(a: Any, b: Any, c: Any, d: Any) -> np.ndarray:
    """Newcombe's corrected phi of the paired 2x2 table.

    phi = (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d)); when ad - bc > 0 the
    numerator is max(ad - bc - n/2, 0); phi = 0 when any margin is empty.
    """
    a, b, c, d = _arr(a, b, c, d)
    n = a + b + c + d
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    num = a * d - b * c
    num = np.where(num > 0, np.maximum(num - n / 2.0, 0.0), num)
    return np.where(margins > 0, num / np.sqrt(np.where(margins > 0, margins, 1.0)), 0.0)


def _newcombe_parts(a: Any, b: Any, c: Any, d: Any, z: float) -> tuple[np.ndarray, ...]:
    a, b, c, d = _arr(a, b, c, d)
    n = a + b + c + d
    m = np.where(n > 0, n, 1.0)
    p1, p2 = (a + b) / m, (a + c) / m  # reference accuracy, candidate accuracy
    l1, u1 = wilson_bounds(a + b, n, z)
    l2, u2 = wilson_bounds(a + c, n, z)
    return n, p1 - p2, p1 - l1, u1 - p1, p2 - l2, u2 - p2, newcombe_phi(a, b, c, d)


def newcombe_lower(a: Any, b: Any, c: Any, d: Any, alpha: float) -> np.ndarray:
    """Newcombe's method-10 one-sided lower bound of ``(b - c) / n`` at level ``alpha`` (-1 when n = 0)."""
    n, est, dl1, _, _, du2, phi = _newcombe_parts(a, b, c, d, z_value(alpha))
    delta = np.sqrt(np.maximum(dl1 * dl1 - 2.0 * phi * dl1 * du2 + du2 * du2, 0.0))
    return np.where(n > 0, np.maximum(est - delta, -1.0), -1.0)


def newcombe_upper(a: Any, b: Any, c: Any, d: Any, alpha: float) -> np.ndarray:
    """Newcombe's method-10 one-sided upper bound of ``(b - c) / n`` at level ``alpha`` (1 when n = 0)."""
    n, est, _, du1, dl2, _, phi = _newcombe_parts(a, b, c, d, z_value(alpha))
    eps = np.sqrt(np.maximum(du1 * du1 - 2.0 * phi * du1 * dl2 + dl2 * dl2, 0.0))
    return np.where(n > 0, np.minimum(est + eps, 1.0), 1.0)


def paired_difference(a: int, b: int, c: int, d: int, confidence: float = CONFIDENCE) -> Interval:
    """Newcombe (1998) method 10, corrected phi: the interval of ``(b - c) / n`` from a paired table.

    Args:
        a: images both got right.
        b: images the reference got right and the candidate wrong.
        c: images the reference got wrong and the candidate right.
        d: images both got wrong.

    The estimate is Newcombe's ``p1 - p2`` with ``p1 = (a+b)/n`` the
    reference's accuracy: positive when the candidate is worse (a drop).
    With n = 0 the interval is [-1, 1].
    """
    _check_table(a, b, c, d)
    alpha = alpha_of(confidence)
    n = a + b + c + d
    if n == 0:
        return Interval(0.0, -1.0, 1.0)
    return Interval((b - c) / n, float(newcombe_lower(a, b, c, d, alpha)), float(newcombe_upper(a, b, c, d, alpha)))


# -- the paired difference: Tango (1998) score interval --------------------------------
def tango_statistic(b: Any, c: Any, n: Any, delta: Any) -> np.ndarray:
    """Tango's score statistic for H0: (p12 - p21) = delta, with the restricted ML estimate of p21.

    Decreasing in ``delta``; +-inf where its variance vanishes (0 where the numerator does too).
    """
    b, c, n, delta = _arr(b, c, n, delta)
    A = 2.0 * n
    B = -b - c + (2.0 * n - b + c) * delta
    C = -c * delta * (1.0 - delta)
    p21 = (np.sqrt(np.maximum(B * B - 4.0 * A * C, 0.0)) - B) / (2.0 * np.where(A > 0, A, 1.0))
    var = n * (2.0 * p21 + delta * (1.0 - delta))
    num = b - c - n * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / np.sqrt(np.maximum(var, 0.0))
    return np.where(var > 0, t, np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)))


def _tango_root(b: np.ndarray, c: np.ndarray, n: np.ndarray, target: float, lo: np.ndarray, hi: np.ndarray,
                keep_low: bool) -> np.ndarray:
    """Bisection for tango_statistic == target on [lo, hi] (the statistic decreases in delta).

    Returns the bracket end on the conservative side: the low end for a
    lower bound (``keep_low``), the high end for an upper bound.
    """
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2.0
        above = tango_statistic(b, c, n, mid) > target  # the root lies above mid
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return lo if keep_low else hi


def tango_lower(b: Any, c: Any, n: Any, alpha: float) -> np.ndarray:
    """Tango's one-sided lower bound of ``(b - c) / n`` at level ``alpha`` (-1 when n = 0 or c = n)."""
    b, c, n = _arr(b, c, n)
    est = np.where(n > 0, (b - c) / np.where(n > 0, n, 1.0), 0.0)
    root = _tango_root(b, c, n, z_value(alpha), np.full_like(est, -1.0), est, keep_low=True)
    return np.where((n > 0) & (c < n), root, -1.0)


def tango_upper(b: Any, c: Any, n: Any, alpha: float) -> np.ndarray:
    """Tango's one-sided upper bound of ``(b - c) / n`` at level ``alpha`` (1 when n = 0 or b = n)."""
    b, c, n = _arr(b, c, n)
    est = np.where(n > 0, (b - c) / np.where(n > 0, n, 1.0), 0.0)
    root = _tango_root(b, c, n, -z_value(alpha), est, np.full_like(est, 1.0), keep_low=False)
    return np.where((n > 0) & (b < n), root, 1.0)


def tango(a: int, b: int, c: int, d: int, confidence: float = CONFIDENCE) -> Interval:
    """Tango's (1998) asymptotic score interval of ``(b - c) / n`` from a paired table (a and d enter only via n)."""
    _check_table(a, b, c, d)
    alpha = alpha_of(confidence)
    n = a + b + c + d
    if n == 0:
        return Interval(0.0, -1.0, 1.0)
    return Interval((b - c) / n, float(tango_lower(b, c, n, alpha)), float(tango_upper(b, c, n, alpha)))


# -- what the gate uses for the drop ---------------------------------------------------------
def drop_lower(a: Any, b: Any, c: Any, d: Any, alpha: float) -> np.ndarray:
    """The gate's one-sided lower bound of the drop: the lower of Newcombe's and Tango's."""
    n = np.asarray(a) + np.asarray(b) + np.asarray(c) + np.asarray(d)
    return np.minimum(newcombe_lower(a, b, c, d, alpha), tango_lower(b, c, n, alpha))


def drop_upper(a: Any, b: Any, c: Any, d: Any, alpha: float) -> np.ndarray:
    """The gate's one-sided upper bound of the drop: the higher of Newcombe's and Tango's."""
    n = np.asarray(a) + np.asarray(b) + np.asarray(c) + np.asarray(d)
    return np.maximum(newcombe_upper(a, b, c, d, alpha), tango_upper(b, c, n, alpha))


def drop_interval(a: int, b: int, c: int, d: int, confidence: float = CONFIDENCE) -> Interval:
    """The gate's interval of the drop ``(b - c) / n``: the union of ``paired_difference`` and ``tango``."""
    _check_table(a, b, c, d)
    alpha = alpha_of(confidence)
    n = a + b + c + d
    if n == 0:
        return Interval(0.0, -1.0, 1.0)
    return Interval((b - c) / n, float(drop_lower(a, b, c, d, alpha)), float(drop_upper(a, b, c, d, alpha)))


# -- verdicts ---------------------------------------------------------------------------------
def verdict_codes(lo: Any, hi: Any, budget: Any) -> np.ndarray:
    """1 accepted (hi <= budget), -1 rejected (lo > budget), 0 inconclusive; elementwise."""
    lo, hi, budget = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float), np.asarray(budget, float))
    return np.where(hi <= budget, 1, np.where(lo > budget, -1, 0)).astype(np.int8)


def verdict(lo: float, hi: float, budget: float) -> str:
    """accepted (hi <= budget), rejected (lo > budget) or inconclusive."""
    return NAMES[int(verdict_codes(lo, hi, budget))]


def combine_codes(codes: Sequence[Any]) -> np.ndarray:
    """Elementwise: any rejected -> rejected; all accepted -> accepted; else inconclusive."""
    stack = np.stack([np.asarray(c, dtype=np.int8) for c in codes])
    return np.where((stack == -1).any(0), -1, np.where((stack == 1).all(0), 1, 0)).astype(np.int8)


def combine(verdicts: list[str]) -> str:
    """Any rejected -> rejected; all accepted -> accepted; else inconclusive."""
    return NAMES[int(combine_codes([CODES[v] for v in verdicts]))]


# -- how many images --------------------------------------------------------------------------
def smallest_count(ok: Callable[[int], bool], start: int = 1, limit: int = 10**9) -> int | None:
    """The smallest m >= ``start`` with ``ok(m)``, or None up to ``limit``; ``ok`` must be monotone (false, then true)."""
    start = max(1, start)
    if ok(start):
        return start
    hi = start * 2
    while not ok(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = max(start, hi // 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def images_to_settle(decides: Callable[[int], bool], n: int, limit: int = 10_000_000) -> int | None:
    """The smallest total image count m > n for which ``decides(m)`` holds, or None below ``limit``.

    ``decides(m)`` must be monotone in m (false, then true): it rescales the
    counts seen on ``n`` images to ``m`` images, keeping their rates, and says
    whether the interval would then decide.
    """
    n = max(n, 1)
    return smallest_count(decides, start=n + 1, limit=limit)


def scale_count(k: int, n: int, m: int) -> int:
    """``k`` of ``n`` rescaled to ``m`` images at the same rate (rounded)."""
    return int(round(k * m / n)) if n else 0
