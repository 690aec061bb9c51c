"""edgedeploy.core.metrics: the one classification_metrics, against hand counts and scikit-learn."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy.core.metrics import SCHEMA_KEYS, classification_metrics, confusion_matrix, top_k_accuracy

LABELS = ["cat", "dog", "bird"]
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 1]
# By hand: rows are true classes, columns predicted classes.
#   cat : predicted cat, dog, cat          -> [2, 1, 0]
#   dog : predicted dog, bird               -> [0, 1, 1]
#   bird: predicted bird, bird, cat, dog    -> [1, 1, 2]
CM = [[2, 1, 0], [0, 1, 1], [1, 1, 2]]


def test_confusion_matrix_by_hand():
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == CM


def test_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert tuple(m) == SCHEMA_KEYS
    assert m["confusion_matrix"] == CM
    assert m["accuracy"] == pytest.approx(5 / 9) and (m["num_samples"], m["correct"]) == (9, 5)
    pc = m["per_class"]
    # precision = diagonal / column sum (3, 3, 3); recall = diagonal / row sum (3, 2, 4)
    assert pc["cat"]["precision"] == pytest.approx(2 / 3) and pc["cat"]["recall"] == pytest.approx(2 / 3)
    assert pc["dog"]["precision"] == pytest.approx(1 / 3) and pc["dog"]["recall"] == pytest.approx(1 / 2)
    assert pc["bird"]["precision"] == pytest.approx(2 / 3) and pc["bird"]["recall"] == pytest.approx(1 / 2)
    assert pc["cat"]["f1"] == pytest.approx(2 / 3)
    assert pc["dog"]["f1"] == pytest.approx(2 / 5)  # 2 * (1/3 * 1/2) / (1/3 + 1/2)
    assert pc["bird"]["f1"] == pytest.approx(4 / 7)  # 2 * (2/3 * 1/2) / (2/3 + 1/2)
    assert [pc[c]["support"] for c in LABELS] == [3, 2, 4] and [pc[c]["predicted"] for c in LABELS] == [3, 3, 3]
    assert m["macro_avg"]["precision"] == pytest.approx(5 / 9)
    assert m["macro_avg"]["recall"] == pytest.approx(5 / 9)
    assert m["macro_avg"]["f1"] == pytest.approx((2 / 3 + 2 / 5 + 4 / 7) / 3)
    assert m["weighted_avg"]["recall"] == pytest.approx(5 / 9)  # weighted recall is accuracy
    assert m["averaged_over"] == LABELS


def test_macro_averages_run_over_the_classes_present():
    # truth 0,0,1,1,2 ; predicted 0,1,1,1,0 ; class d never occurs in either
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c", "d"])
    assert m["averaged_over"] == ["a", "b", "c"]
    assert m["macro_avg"]["recall"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["macro_avg"]["f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert m["weighted_avg"]["recall"] == pytest.approx((0.5 * 2 + 1 * 2 + 0) / 5)
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}


@pytest.mark.parametrize("seed", range(5))
def test_metrics_agree_with_scikit_learn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = 6
    y_true, y_pred = rng.integers(0, k - 2, 200), rng.integers(1, k - 1, 200)  # classes 0 and 5 missing from one side
    m = classification_metrics(y_true, y_pred, list("abcdef"))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(k), zero_division=0)
    assert np.allclose([m["per_class"][c]["precision"] for c in "abcdef"], p)
    assert np.allclose([m["per_class"][c]["recall"] for c in "abcdef"], r)
    assert np.allclose([m["per_class"][c]["f1"] for c in "abcdef"], f)
    for avg in ("macro", "weighted"):  # scikit-learn's default labels: those present in either
        want = sk.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)[:3]
        got = m[f"{avg}_avg"]
        assert np.allclose([got["precision"], got["recall"], got["f1"]], want)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(k)).tolist()


def test_top_k_accuracy_only_below_the_class_count():
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    assert top_k_accuracy([2, 0, 0], scores, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy([2, 0, 0], scores, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy([2, 0, 0], scores, 3) is None  # k = classes: always 100%, so not reported
    assert top_k_accuracy([0, 1], scores[:2, :2], 5) is None


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix([0, 3], [0, 1], 2)


def test_reports_written(tmp_path):
    from edgedeploy.train.evaluate import metrics_markdown, write_metrics

    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    write_metrics(tmp_path, m)
    assert json.loads((tmp_path / "metrics.json").read_text())["confusion_matrix"] == CM
    md = (tmp_path / "metrics.md").read_text()
    assert "55.56%" in md and "| bird | 1 | 1 | 2 |" in md and "macro avg" in md and "over the 3 classes present" in md
    assert md == metrics_markdown(m)
