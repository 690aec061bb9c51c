"""The statistics of the parity gate: pure functions, standard library only.

Everything here works on counts (integers), so it can be checked against a
brute-force computation and reasoned about without the export around it.

- ``clopper_pearson(k, n)``: the exact 95% interval of a binomial rate
  (the top-1 disagreement rate: k of n images answered differently).
- ``wilson(k, n)``: the score interval of a rate (a building block).
- ``paired_difference(b, c, n)``: the 95% interval of the accuracy drop
  ``(b - c) / n`` from paired counts, Newcombe's hybrid score method (method 10
  of Newcombe 1998, "Improved confidence intervals for the difference between
  binomial proportions based on paired data"). ``b`` = Keras right and export
  wrong, ``c`` = Keras wrong and export right, on the same ``n`` images.
- ``drop_interval(b, c, n)``: what the gate uses: Newcombe's lower end,
  and an exact upper end (the drop cannot exceed ``b / n``).
- ``verdict(lo, hi, budget)``: accepted when the whole interval is within the
  budget, rejected when the whole interval is beyond it, else inconclusive.
- ``images_to_settle``: how many images, at the rates seen so far, would make
  an inconclusive interval decide.

Rates are fractions (0..1) here; the gate turns them into points and percent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

CONFIDENCE = 0.95
ACCEPTED, REJECTED, INCONCLUSIVE = "accepted", "rejected", "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided interval (fractions)."""

    estimate: float
    lo: float
    hi: float

    def scaled(self, factor: float, digits: int = 3) -> dict[str, float]:
        """``{"estimate", "lo", "hi"}`` times ``factor`` (100 for points / percent), rounded."""
        return {"estimate": round(self.estimate * factor, digits), "lo": round(self.lo * factor, digits),
                "hi": round(self.hi * factor, digits)}


def _check_counts(k: int, n: int) -> None:
    if not (isinstance(k, int) and isinstance(n, int)) or n < 0 or k < 0 or k > n:
        raise ValueError(f"expected integer counts 0 <= k <= n, got k={k!r}, n={n!r}")


def normal_quantile(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, refined by one Newton step)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"expected 0 < p < 1, got {p!r}")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - lo:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p  # one Newton step on the exact CDF
    return x - e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return betainc(n - k, k + 1, 1.0 - p)


def _bisect(f: Callable[[float], float], lo: float = 0.0, hi: float = 1.0, iters: int = 52) -> float:
    """The root of an increasing ``f`` on [lo, hi] (f(lo) <= 0 <= f(hi))."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Exact (Clopper-Pearson) interval of a binomial rate: the beta quantiles, found by bisection.

    lo solves P(X >= k | lo) = alpha/2 and hi solves P(X <= k | hi) = alpha/2;
    lo = 0 when k = 0 and hi = 1 when k = n. With n = 0 the interval is [0, 1].
    """
    _check_counts(k, n)
    if n == 0:
        return Interval(0.0, 0.0, 1.0)
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else _bisect(lambda p: (1.0 - binom_cdf(k - 1, n, p)) - alpha / 2)
    hi = 1.0 if k == n else _bisect(lambda p: alpha / 2 - binom_cdf(k, n, p))
    return Interval(k / n, lo, hi)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of a binomial rate (no continuity correction)."""
    _check_counts(k, n)
    if n == 0:
        return Interval(0.0, 0.0, 1.0)
    z = normal_quantile(1.0 - (1.0 - confidence) / 2)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def paired_difference(b: int, c: int, n: int, both_wrong: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """Interval of the accuracy drop ``(b - c) / n`` from paired counts (Newcombe's method 10).

    Args:
        b: images the reference got right and the export wrong.
        c: images the reference got wrong and the export right.
        n: images in all (both right + b + c + both wrong).
        both_wrong: images both got wrong (it enters the correlation term).
    """
    if not all(isinstance(v, int) and v >= 0 for v in (b, c, n, both_wrong)) or b + c + both_wrong > n:
        raise ValueError(f"expected integer counts with b + c + both_wrong <= n, got b={b!r}, c={c!r}, "
                         f"both_wrong={both_wrong!r}, n={n!r}")
    if n == 0:
        return Interval(0.0, -1.0, 1.0)
    d = both_wrong
    a = n - b - c - d
    p1, p2 = (a + b) / n, (a + c) / n  # reference accuracy, export accuracy
    w1, w2 = wilson(a + b, n, confidence), wilson(a + c, n, confidence)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom > 0 else 0.0
    dl1, du1 = p1 - w1.lo, w1.hi - p1
    dl2, du2 = p2 - w2.lo, w2.hi - p2
    delta = math.sqrt(max(0.0, dl1 * dl1 - 2 * phi * dl1 * du2 + du2 * du2))
    eps = math.sqrt(max(0.0, du1 * du1 - 2 * phi * du1 * dl2 + dl2 * dl2))
    theta = (b - c) / n
    return Interval(theta, max(-1.0, theta - delta), min(1.0, theta + eps))


def drop_interval(b: int, c: int, n: int, both_wrong: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """The gate's interval of the accuracy drop ``(b - c) / n``.

    Lower end: Newcombe's (``paired_difference``), which errs on the side of a
    lower bound that is too low, so it does not reject by mistake. Upper end:
    the exact Clopper-Pearson upper bound of ``b / n``, since the drop can never
    exceed the share of images the export alone gets wrong. Newcombe's own
    upper end is not used: when the export gets no image right that the
    reference got wrong (c = 0, the usual case), it falls below the true drop
    far more often than 2.5% of the time (14% in a simulation with n = 80,
    b/n = 2%), and an accepted verdict must not rest on it.
    """
    newcombe = paired_difference(b, c, n, both_wrong, confidence)
    upper = clopper_pearson(b, n, confidence).hi if n else 1.0
    return Interval(newcombe.estimate, min(newcombe.lo, newcombe.estimate), max(upper, newcombe.estimate))


def verdict(lo: float, hi: float, budget: float) -> str:
    """accepted (hi <= budget), rejected (lo > budget) or inconclusive."""
    if hi <= budget:
        return ACCEPTED
    if lo > budget:
        return REJECTED
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """Any rejected -> rejected; all accepted -> accepted; else inconclusive."""
    if REJECTED in verdicts:
        return REJECTED
    if all(v == ACCEPTED for v in verdicts):
        return ACCEPTED
    return INCONCLUSIVE


def images_to_settle(decides: Callable[[int], bool], n: int, limit: int = 10_000_000) -> int | None:
    """The smallest total image count m > n for which ``decides(m)`` holds, or None below ``limit``.

    ``decides(m)`` must be monotone in m (false, then true): it rescales the
    counts seen on ``n`` images to ``m`` images, keeping their rates, and says
    whether the interval would then decide. Doubling, then bisection.
    """
    if n < 1:
        n = 1
    hi = n * 2
    while not decides(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = max(n, hi // 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi


def scale_count(k: int, n: int, m: int) -> int:
    """``k`` of ``n`` rescaled to ``m`` images at the same rate (rounded)."""
    return int(round(k * m / n)) if n else 0
