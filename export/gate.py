"""The parity gate's verdict: typed records, the decision rule and its error model.

``Evidence`` holds the counts measured on one exported file (``parity.py``
measures them); ``decide`` turns them into a ``GateVerdict`` under a
``GatePolicy``. The statistics are in ``stats.py``; ``decide_counts`` is the
rule itself, on arrays of counts, so that ``coverage.py`` simulates exactly
what ``decide`` does. The rule, in words:

- **Evidence is held out.** The drop comes from the paired counts on the
  labelled held-out images (test and validation splits, labelled
  ``--parity-data``); the disagreement rate from those plus the unlabelled
  ``--parity-data`` images. Training images are a diagnosis
  (``Evidence.diagnosis``), never part of a verdict.
- **Parts.** The accuracy drop (reference minus file, in points; positive is
  worse) and the top-1 disagreement rate (percent), each against its budget;
  and per class, the same two on that class's labelled held-out images.
- **Acceptance** needs the drop and the disagreement *both* proven within
  budget: each one-sided upper bound at level ``alpha`` (2.5%, the upper end
  of a 95% interval) at most its budget. That is an intersection-union test
  (Berger 1982): a file whose true drop (or disagreement) is over budget is
  accepted only if that part's bound misses, so false acceptance is at most
  ``alpha`` with no multiplicity correction. Per-class parts do not block
  acceptance (classes have few images); they can only reject.
- **Rejection** needs one part proven beyond budget: its one-sided lower
  bound above the budget. Any of ``2 + 2K`` parts (K classes) can reject, a
  union, so each lower bound is taken at ``alpha / (2 + 2K)`` (Bonferroni).
  A faithful file (every part within budget) is then falsely rejected with
  probability at most ``alpha``, family-wise over the quantities and the
  classes. For the file's decision ("is any part rejected?") Holm's
  step-down procedure rejects exactly when Bonferroni does (its first step).
- **Inconclusive** is neither: the evidence cannot tell. ``evidence``
  (default) accepts it with a warning, ``strict`` does not, ``point`` is the
  rule before intervals (the measured drop against the budget).
- float32 and float16 files must also stay within ``--max-prob-diff`` of the
  reference in every probability (held-out images): for them a difference
  is a bug, not noise.

``evidence_needed`` says when the held-out images are too few to prove the
budgets even if the file changed nothing, and how many would do.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from edgedeploy.core.errors import EdgeDeployError

from . import stats
from .stats import INCONCLUSIVE, REJECTED, Interval

POLICIES = ("evidence", "strict", "point")
DEFAULT_POLICY = "evidence"
DEFAULT_MAX_ACCURACY_DROP = 1.0  # points
DEFAULT_MAX_PROB_DIFF = 1e-3
# Percent of held-out images on which the file's top-1 differs from Keras.
# Measured (reports/gate_photo_run.md, export/README.md): faithful files
# disagree on 0-1% (digits: 0%; the 160 px cat/dog small CNN: under 1%); int8
# calibrated on grey images disagrees on 17.5% of the 80 test photos, and its
# exact lower bound there is 9.9%. 5% sits 5x above the faithful files and
# below that lower bound, so such a file is rejected even on 80 images, and a
# faithful one practically never is.
DEFAULT_MAX_DISAGREEMENT = 5.0
FLOAT_MODES = ("none", "float16")
MULTIPLICITY = "Bonferroni over the 2 + 2K parts (K classes); equal to Holm's first step for the file's decision"


@dataclass
class GatePolicy:
    """The gate's settings (validated on construction)."""

    policy: str = DEFAULT_POLICY
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    max_disagreement: float = DEFAULT_MAX_DISAGREEMENT
    max_prob_diff: float = DEFAULT_MAX_PROB_DIFF
    confidence: float = stats.CONFIDENCE

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise EdgeDeployError(f"Received --gate {self.policy!r}, expected one of: {', '.join(POLICIES)}")
        if not self.max_accuracy_drop >= 0:
            raise EdgeDeployError(f"Received --max-accuracy-drop {self.max_accuracy_drop!r}, expected a number of points >= 0")
        if not 0 < self.max_disagreement <= 100:
            raise EdgeDeployError(f"Received --max-disagreement {self.max_disagreement!r}, expected a percentage > 0 and <= 100")
        if not self.max_prob_diff > 0:
            raise EdgeDeployError(f"Received --max-prob-diff {self.max_prob_diff!r}, expected a number > 0")
        if not 0.5 < self.confidence < 1:
            raise EdgeDeployError(f"Received confidence {self.confidence!r}, expected 0.5 < confidence < 1")

    @property
    def alpha(self) -> float:
        """One-sided level: of each acceptance bound, and family-wise of the rejections (0.025 at 95%)."""
        return stats.alpha_of(self.confidence)


@dataclass(frozen=True)
class Levels:
    """One-sided levels of the bounds the verdict compares with the budgets."""

    accept: float  # each upper bound (intersection-union test: no correction)
    reject: float  # each lower bound: alpha / parts (Bonferroni)
    parts: int

    def to_dict(self) -> dict[str, Any]:
        return {"upper_bound_confidence": 1 - self.accept, "lower_bound_confidence": 1 - self.reject,
                "parts": self.parts, "multiplicity": MULTIPLICITY}


def levels(p: GatePolicy, n_classes: int, correct: bool = True) -> Levels:
    """The levels for a file with ``n_classes`` per-class parts (``correct=False``: no Bonferroni, for contrast only)."""
    parts = 2 + 2 * n_classes
    return Levels(p.alpha, p.alpha / parts if correct else p.alpha, parts)


@dataclass
class PairedCounts:
    """Top-1 correctness of Keras and the export on the same labelled held-out images."""

    n: int = 0
    keras_right_export_wrong: int = 0  # b
    keras_wrong_export_right: int = 0  # c
    both_wrong: int = 0  # d
    keras_right: int = 0

    @property
    def both_right(self) -> int:
        """a = n - b - c - d."""
        return self.n - self.keras_right_export_wrong - self.keras_wrong_export_right - self.both_wrong

    def table(self) -> tuple[int, int, int, int]:
        """(a, b, c, d): both right, Keras right only, export right only, both wrong."""
        return self.both_right, self.keras_right_export_wrong, self.keras_wrong_export_right, self.both_wrong

    @property
    def drop(self) -> float:
        """(b - c) / n, a fraction."""
        return (self.keras_right_export_wrong - self.keras_wrong_export_right) / self.n if self.n else 0.0

    def interval(self, confidence: float = stats.CONFIDENCE) -> Interval:
        return stats.drop_interval(*self.table(), confidence)

    def scaled(self, m: int) -> "PairedCounts":
        s = lambda k: stats.scale_count(k, self.n, m)  # noqa: E731
        b, c, d = s(self.keras_right_export_wrong), s(self.keras_wrong_export_right), s(self.both_wrong)
        return PairedCounts(m, b, c, min(d, m - b - c), s(self.keras_right))


@dataclass
class Agreement:
    """Top-1 disagreements with Keras among ``n`` images (labels not needed)."""

    n: int = 0
    disagreements: int = 0

    def interval(self, confidence: float = stats.CONFIDENCE) -> Interval:
        return stats.clopper_pearson(self.disagreements, self.n, confidence)

    def scaled(self, m: int) -> "Agreement":
        return Agreement(m, stats.scale_count(self.disagreements, self.n, m))


@dataclass
class ClassEvidence:
    """One class's labelled held-out images: paired counts and disagreements."""

    name: str
    labelled: PairedCounts
    agreement: Agreement


@dataclass
class Evidence:
    """What the parity run measured on one file.

    ``labelled``: paired counts on the labelled held-out images (the drop).
    ``agreement``: disagreements on every held-out image, labelled or not.
    ``diagnosis``: disagreements on training images, shown, never weighed.
    ``unreadable``: ``--parity-data`` files that could not be read (not evidence, but counted).
    """

    labelled: PairedCounts
    agreement: Agreement
    per_class: list[ClassEvidence] = field(default_factory=list)
    max_abs_prob_diff: float = 0.0
    mean_abs_prob_diff: float = 0.0
    diagnosis: Agreement | None = None
    unreadable: int = 0


@dataclass
class Part:
    """One quantity's estimate, the bounds the verdict used (points or percent), and the verdict."""

    estimate: float
    lo: float  # one-sided lower bound at confidence lo_confidence (rejects when above the budget)
    hi: float  # one-sided upper bound at confidence hi_confidence (accepts when within the budget)
    budget: float
    verdict: str
    lo_confidence: float = 1 - stats.alpha_of(stats.CONFIDENCE)
    hi_confidence: float = 1 - stats.alpha_of(stats.CONFIDENCE)

    def __post_init__(self) -> None:
        if not self.lo <= self.estimate <= self.hi:
            raise ValueError(f"a part's bounds must hold its estimate: {self.estimate!r} in [{self.lo!r}, {self.hi!r}]")

    def to_dict(self) -> dict[str, Any]:
        """Unrounded (the report rounds for display, outward: ``interval_text``)."""
        return asdict(self)

    def interval_text(self, digits: int = 2, signed: bool = False) -> str:
        """``[lo, hi]`` rounded outward, so the printed interval still holds the printed estimate."""
        f = "+.{}f".format(digits) if signed else ".{}f".format(digits)
        return f"[{format(stats.floor_to(self.lo, digits), f)}, {format(stats.ceil_to(self.hi, digits), f)}]"


# -- the rule on arrays of counts ----------------------------------------------------------
@dataclass
class Bounds:
    """Estimates, bounds (fractions) and verdict codes of one part, one entry per table."""

    estimate: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    code: np.ndarray


def drop_bounds(a: Any, b: Any, c: Any, d: Any, budget_points: float, lv: Levels) -> Bounds:
    """The drop part: lower bound at ``lv.reject``, upper bound at ``lv.accept``, verdict against the budget."""
    a, b, c, d = (np.asarray(x, dtype=np.int64) for x in (a, b, c, d))
    n = a + b + c + d
    est = np.where(n > 0, (b - c) / np.where(n > 0, n, 1), 0.0)
    lo = np.minimum(stats.drop_lower(a, b, c, d, lv.reject), est)
    hi = np.maximum(stats.drop_upper(a, b, c, d, lv.accept), est)
    return Bounds(est, lo, hi, stats.verdict_codes(lo, hi, budget_points / 100.0))


def rate_bounds(k: Any, n: Any, budget_percent: float, lv: Levels) -> Bounds:
    """The disagreement part: exact (Clopper-Pearson) bounds at the same levels."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    est = np.where(n > 0, k / np.where(n > 0, n, 1), 0.0)
    lo = np.minimum(stats.cp_lower(k, n, lv.reject), est)
    hi = np.maximum(stats.cp_upper(k, n, lv.accept), est)
    return Bounds(est, lo, hi, stats.verdict_codes(lo, hi, budget_percent / 100.0))


@dataclass
class Decision:
    """The rule's outcome on arrays of tables (``decide_counts``)."""

    drop: Bounds
    disagreement: Bounds
    classes: list[tuple[Bounds, Bounds, np.ndarray]]  # (drop, disagreement, combined code) per class
    verdict: np.ndarray  # file verdict codes
    levels: Levels


def file_codes(drop: np.ndarray, disagreement: np.ndarray, class_codes: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Rejected if any part is; accepted if the drop and the disagreement both are; else inconclusive."""
    overall = stats.combine_codes([drop, disagreement])
    if not class_codes:
        return overall
    class_rejected = (np.stack([np.asarray(c) for c in class_codes]) == -1).any(0)
    return np.where(class_rejected, -1, overall).astype(np.int8)


def decide_counts(table: Sequence[Any], agreement: Sequence[Any], p: GatePolicy,
                  classes: Sequence[tuple[Sequence[Any], Sequence[Any]]] = (), correct: bool = True) -> Decision:
    """The gate's rule on arrays: ``table`` = (a, b, c, d), ``agreement`` = (disagreements, n).

    ``classes`` holds one (table, agreement) pair per class. ``decide`` runs
    this on one file; ``coverage.py`` on many simulated ones.
    """
    lv = levels(p, len(classes), correct)
    drop = drop_bounds(*table, p.max_accuracy_drop, lv)
    dis = rate_bounds(*agreement, p.max_disagreement, lv)
    class_lv = Levels(lv.reject, lv.reject, lv.parts)  # per class: simultaneous bounds at the Bonferroni level
    per_class = []
    for ctable, cagree in classes:
        cd = drop_bounds(*ctable, p.max_accuracy_drop, class_lv)
        cg = rate_bounds(*cagree, p.max_disagreement, class_lv)
        per_class.append((cd, cg, stats.combine_codes([cd.code, cg.code])))
    return Decision(drop, dis, per_class, file_codes(drop.code, dis.code, [c for _, _, c in per_class]), lv)


def passed_codes(verdict: np.ndarray, drop_estimate: np.ndarray, p: GatePolicy) -> np.ndarray:
    """Whether the policy keeps each file (before the float files' probability rule)."""
    if p.policy == "point":
        return np.asarray(drop_estimate) <= p.max_accuracy_drop / 100.0
    if p.policy == "strict":
        return np.asarray(verdict) == 1
    return np.asarray(verdict) != -1


# -- small evidence --------------------------------------------------------------------------
@dataclass
class EvidenceNeed:
    """Whether the held-out images could prove the budgets even if the file changed nothing."""

    labelled: int
    labelled_needed: int | None  # None: no number of images would (a budget of 0)
    agreement: int
    agreement_needed: int | None
    max_accuracy_drop: float
    max_disagreement: float

    @property
    def enough(self) -> bool:
        return (self.labelled_needed is not None and self.labelled >= self.labelled_needed
                and self.agreement_needed is not None and self.agreement >= self.agreement_needed)

    def message(self) -> str | None:
        """One paragraph for the top of the report and the console, or None when the evidence can suffice."""
        if self.enough:
            return None
        parts = []
        if self.labelled_needed is None or self.labelled < self.labelled_needed:
            need = "no number of images can" if self.labelled_needed is None else f"{self.labelled_needed:,} labelled held-out images are needed"
            parts.append(f"proving an accuracy drop <= {self.max_accuracy_drop:g} point(s): {need} (there are {self.labelled:,})")
        if self.agreement_needed is None or self.agreement < self.agreement_needed:
            parts.append(f"proving a disagreement <= {self.max_disagreement:g}%: {self.agreement_needed:,} held-out images "
                         f"are needed (there are {self.agreement:,})")
        return ("the held-out evidence is too small to prove the budgets even if a file changed nothing; "
                + "; ".join(parts) + ". Files can be rejected but not proven: give more images from the deployment "
                "distribution with --parity-data DIR (images in class subfolders count for both; loose, unlabelled "
                "images count for the disagreement only).")

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), enough=self.enough, message=self.message())


def labelled_needed(accuracy: float, p: GatePolicy) -> int | None:
    """The fewest labelled held-out images whose drop bound, with b = c = 0 at ``accuracy``, is within budget."""
    return _labelled_needed(min(max(float(accuracy), 0.0), 1.0), p.max_accuracy_drop / 100.0, p.alpha)


@lru_cache(maxsize=256)
def _labelled_needed(acc: float, budget: float, alpha: float) -> int | None:
    def ok(n: int) -> bool:
        a = int(round(acc * n))
        return bool(stats.drop_upper(a, 0, 0, n - a, alpha) <= budget)

    return stats.smallest_count(ok, limit=10**9)


def agreement_needed(p: GatePolicy) -> int | None:
    """The fewest held-out images whose exact disagreement bound with 0 disagreements is within budget."""
    return stats.smallest_count(lambda n: bool(stats.cp_upper(0, n, p.alpha) <= p.max_disagreement / 100.0), limit=10**9)


def evidence_needed(ev: Evidence, p: GatePolicy) -> EvidenceNeed:
    """Can the held-out evidence prove the budgets at all (the best case, zero changes)? And if not, how many images?"""
    lab = ev.labelled
    return evidence_needed_counts(lab.n, lab.keras_right / lab.n if lab.n else 0.5, ev.agreement.n, p)


def evidence_needed_counts(labelled: int, accuracy: float, heldout: int, p: GatePolicy) -> EvidenceNeed:
    """``evidence_needed`` before any file is gated: ``labelled`` held-out images at the reference's
    ``accuracy`` (a fraction), ``heldout`` held-out images in all (labelled or not)."""
    return EvidenceNeed(labelled, labelled_needed(accuracy, p), heldout, agreement_needed(p),
                        p.max_accuracy_drop, p.max_disagreement)


# -- one file --------------------------------------------------------------------------------
@dataclass
class GateVerdict:
    """The gate's decision on one file; ``to_dict()`` is ``metrics["gate"]``."""

    policy: str
    verdict: str  # accepted | inconclusive | rejected (the evidence, whatever the policy)
    passed: bool  # kept as the accepted file under the policy
    reason: str | None
    accuracy_drop: Part  # points
    disagreement: Part  # percent
    max_accuracy_drop: float
    max_disagreement: float
    max_prob_diff: float | None
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    settle: str | None = None  # how many more images would decide an inconclusive file
    warning: str | None = None
    levels: Levels | None = None
    evidence_need: EvidenceNeed | None = None
    diagnosis: dict[str, Any] | None = None  # training images: counts shown, never weighed
    unreadable_parity_images: int = 0

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"passed": self.passed, "verdict": self.verdict, "policy": self.policy,
                             "max_accuracy_drop": self.max_accuracy_drop, "max_disagreement": self.max_disagreement,
                             "max_prob_diff": self.max_prob_diff, "accuracy_drop": self.accuracy_drop.to_dict(),
                             "top1_disagreement": self.disagreement.to_dict(), "per_class": self.per_class,
                             "method": {"accuracy_drop": stats.DROP_METHOD, "top1_disagreement": stats.RATE_METHOD},
                             "unreadable_parity_images": self.unreadable_parity_images}
        if self.levels is not None:
            d["levels"] = self.levels.to_dict()
        if self.evidence_need is not None:
            d["evidence_need"] = self.evidence_need.to_dict()
        if self.diagnosis is not None:
            d["diagnosis_train"] = self.diagnosis
        for key in ("reason", "settle", "warning"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


def _part(b: Bounds, i: int, scale: float, budget: float, lv_lo: float, lv_hi: float) -> Part:
    est, lo, hi = float(b.estimate[i]) * scale, float(b.lo[i]) * scale, float(b.hi[i]) * scale
    return Part(est, min(lo, est), max(hi, est), budget, stats.NAMES[int(b.code[i])], 1 - lv_lo, 1 - lv_hi)


def _one(x: Any) -> np.ndarray:
    return np.asarray([x])


def _decide_one(ev: Evidence, p: GatePolicy) -> Decision:
    classes = [(tuple(_one(v) for v in ce.labelled.table()), (_one(ce.agreement.disagreements), _one(ce.agreement.n)))
               for ce in ev.per_class]
    return decide_counts(tuple(_one(v) for v in ev.labelled.table()),
                         (_one(ev.agreement.disagreements), _one(ev.agreement.n)), p, classes)


def _prob_diff_reason(ev: Evidence, mode: str, p: GatePolicy) -> str | None:
    diff = ev.max_abs_prob_diff  # unrounded: compared as measured
    if mode == "none" and diff > p.max_prob_diff:
        return f"max probability difference {diff:.3g} > {p.max_prob_diff:g} for a float32 model (a conversion bug)"
    if mode == "float16" and diff > p.max_prob_diff:
        return (f"max probability difference {diff:.3g} > {p.max_prob_diff:g} for a float16 model "
                "(float16 weights alone move borderline probabilities by about 1e-3; see --max-prob-diff)")
    return None


def _settle(ev: Evidence, p: GatePolicy) -> str | None:
    """How many more images, at the rates seen so far, would turn inconclusive into a decision."""
    n = max(ev.agreement.n, 1)

    lv = levels(p, len(ev.per_class))

    def decides(m: int) -> bool:
        lab = ev.labelled.scaled(max(1, round(ev.labelled.n * m / n)))
        agr = ev.agreement.scaled(m)
        drop = drop_bounds(*lab.table(), p.max_accuracy_drop, lv)
        dis = rate_bounds(agr.disagreements, agr.n, p.max_disagreement, lv)
        return int(file_codes(drop.code, dis.code)) != 0

    m = stats.images_to_settle(decides, n, limit=n * 1000)
    if m is None:
        return "more images of the same kind would not settle it at the rates seen so far (they sit at the budget)"
    return f"about {m - n:,} more images like these would settle it (at the rates seen so far)"


def decide(ev: Evidence, mode: str, p: GatePolicy, accuracy: float | None = None, keras_accuracy: float | None = None) -> GateVerdict:
    """The verdict on one file: its evidence, its quantize mode, the policy."""
    dec = _decide_one(ev, p)
    lv = dec.levels
    d = _part(dec.drop, 0, 100.0, p.max_accuracy_drop, lv.reject, lv.accept)
    g = _part(dec.disagreement, 0, 100.0, p.max_disagreement, lv.reject, lv.accept)
    per_class: dict[str, dict[str, Any]] = {}
    rejected_classes: list[str] = []
    for ce, (cd, cg, code) in zip(ev.per_class, dec.classes):
        v = stats.NAMES[int(code[0])]
        per_class[ce.name] = {"accuracy_drop": _part(cd, 0, 100.0, p.max_accuracy_drop, lv.reject, lv.reject).to_dict(),
                              "top1_disagreement": _part(cg, 0, 100.0, p.max_disagreement, lv.reject, lv.reject).to_dict(),
                              "verdict": v, "labelled_samples": ce.labelled.n, "agreement_samples": ce.agreement.n}
        if v == REJECTED:
            rejected_classes.append(ce.name)
    verdict = stats.NAMES[int(dec.verdict[0])]
    passed = bool(passed_codes(dec.verdict, dec.drop.estimate, p)[0])

    acc = "" if accuracy is None or keras_accuracy is None else f" (accuracy {accuracy:.2f}% vs Keras {keras_accuracy:.2f}%)"
    levels_text = f"upper bound {100 * (1 - lv.accept):g}%, lower bound {100 * (1 - lv.reject):.4g}% one-sided"
    reason: str | None = None
    if p.policy == "point":
        if not passed:
            reason = f"accuracy drop {d.estimate:.2f} points > {p.max_accuracy_drop:g}{acc}"
    elif d.verdict == REJECTED:
        reason = (f"accuracy drop {d.estimate:.2f} points, interval {d.interval_text()} ({levels_text}), "
                  f"above {p.max_accuracy_drop:g}{acc}")
    elif g.verdict == REJECTED:
        reason = (f"top-1 disagreement with Keras {g.estimate:.1f}% of {ev.agreement.n} held-out images, interval "
                  f"{g.interval_text(1)}% ({levels_text}), above {p.max_disagreement:g}%, far more than a faithful "
                  "quantization changes")
    elif rejected_classes:
        c = per_class[rejected_classes[0]]
        reason = (f"class {rejected_classes[0]!r}: accuracy drop {c['accuracy_drop']['estimate']:.2f} points, "
                  f"disagreement {c['top1_disagreement']['estimate']:.1f}%, proven above budget")
    elif not passed:
        reason = (f"inconclusive under --gate strict: accuracy drop {d.estimate:.2f} points, interval "
                  f"{d.interval_text()} ({levels_text}), budget {p.max_accuracy_drop:g}; disagreement "
                  f"{g.estimate:.1f}% {g.interval_text(1)}, budget {p.max_disagreement:g}%")
    prob_reason = _prob_diff_reason(ev, mode, p)
    if prob_reason is not None:
        passed, verdict = False, REJECTED
        reason = reason or prob_reason
    settle = _settle(ev, p) if verdict == INCONCLUSIVE else None
    warning = None
    if verdict == INCONCLUSIVE and passed and p.policy == "evidence":
        warning = (f"inconclusive, accepted under --gate evidence: accuracy drop {d.estimate:.2f} points, interval "
                   f"{d.interval_text()}, disagreement {g.estimate:.1f}% {g.interval_text(1)}; {settle}")
    diag = None if ev.diagnosis is None else {"images": ev.diagnosis.n, "disagreements": ev.diagnosis.disagreements}
    return GateVerdict(policy=p.policy, verdict=verdict, passed=passed, reason=reason, accuracy_drop=d, disagreement=g,
                       max_accuracy_drop=p.max_accuracy_drop, max_disagreement=p.max_disagreement,
                       max_prob_diff=p.max_prob_diff if mode in FLOAT_MODES else None, per_class=per_class,
                       settle=settle, warning=warning, levels=lv, evidence_need=evidence_needed(ev, p),
                       diagnosis=diag, unreadable_parity_images=ev.unreadable)
