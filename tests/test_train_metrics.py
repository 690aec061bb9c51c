"""train/evaluate.py: metrics against a confusion matrix computed by hand (no TensorFlow)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import train_fixtures  # noqa: F401  (puts the checkout on sys.path)
from edgedeploy.train.evaluate import classification_metrics, confusion_matrix, metrics_markdown, write_metrics

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
    assert m["confusion_matrix"] == CM
    assert m["accuracy"] == pytest.approx(5 / 9)
    assert m["num_samples"] == 9
    pc = m["per_class"]
    # precision = diagonal / column sum (3, 3, 3); recall = diagonal / row sum (3, 2, 4)
    assert pc["cat"]["precision"] == pytest.approx(2 / 3) and pc["cat"]["recall"] == pytest.approx(2 / 3)
    assert pc["dog"]["precision"] == pytest.approx(1 / 3) and pc["dog"]["recall"] == pytest.approx(1 / 2)
    assert pc["bird"]["precision"] == pytest.approx(2 / 3) and pc["bird"]["recall"] == pytest.approx(1 / 2)
    assert pc["cat"]["f1"] == pytest.approx(2 / 3)
    assert pc["dog"]["f1"] == pytest.approx(2 / 5)  # 2 * (1/3 * 1/2) / (1/3 + 1/2)
    assert pc["bird"]["f1"] == pytest.approx(4 / 7)  # 2 * (2/3 * 1/2) / (2/3 + 1/2)
    assert [pc[c]["support"] for c in LABELS] == [3, 2, 4]
    assert m["macro_avg"]["precision"] == pytest.approx(5 / 9)
    assert m["macro_avg"]["recall"] == pytest.approx(5 / 9)
    assert m["macro_avg"]["f1"] == pytest.approx((2 / 3 + 2 / 5 + 4 / 7) / 3)
    assert m["weighted_avg"]["recall"] == pytest.approx(5 / 9)  # weighted recall is accuracy


def test_metrics_agree_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    m = classification_metrics(y_true, y_pred, list("abcde"))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(5), zero_division=0)
    assert np.allclose([m["per_class"][c]["precision"] for c in "abcde"], p)
    assert np.allclose([m["per_class"][c]["recall"] for c in "abcde"], r)
    assert np.allclose([m["per_class"][c]["f1"] for c in "abcde"], f)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(5)).tolist()


def test_class_never_seen_or_predicted_counts_as_zero():
    m = classification_metrics([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_avg"]["f1"] == pytest.approx(2 / 3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 2)


def test_reports_written(tmp_path):
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    write_metrics(tmp_path, m)
    assert json.loads((tmp_path / "metrics.json").read_text())["confusion_matrix"] == CM
    md = (tmp_path / "metrics.md").read_text()
    assert "55.56%" in md and "| bird | 1 | 1 | 2 |" in md and "macro avg" in md
    assert md == metrics_markdown(m)
