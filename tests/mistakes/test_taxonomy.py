"""Mistake taxonomy, consensus errors and neighbour disagreement; a planted label error in digits."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope.mistakes import confusion_pairs, consensus_errors, mistake_counts, near_miss_k, neighbour_disagreement
from zooscope.models.calibration import topk


@pytest.fixture(scope="module")
def planted(digits):
    """A small zoo of classifiers trained on digits' train split, and a clean eval set (samples every model
    gets right and whose neighbours agree with their label) with every sixth '0' relabelled '6' on purpose.

    Returns (preds [M, n], mean probs [n, C], embedding [n, d], planted labels [n], planted positions).
    The embedding is LDA's, fitted on the train split: a strong model's embedding.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    tr, ev = digits.split("train"), digits.split("eval")
    x = digits.images.reshape(len(digits.images), -1) / 255.0
    zoo = [LogisticRegression(C=c, max_iter=300) for c in (0.1, 1.0)] + [KNeighborsClassifier(k) for k in (1, 3, 5)] + \
          [DecisionTreeClassifier(max_depth=12, random_state=0), LinearDiscriminantAnalysis(), GaussianNB()]
    for clf in zoo:
        clf.fit(x[tr], digits.labels[tr])
    emb = zoo[-2].transform(x[ev])
    labels = digits.labels[ev]
    preds = np.stack([clf.predict(x[ev]) for clf in zoo])
    clean = np.flatnonzero((preds == labels).all(0))
    while len(natural := neighbour_disagreement(emb[clean], labels[clean], k=10, num_classes=10).positions):
        clean = np.delete(clean, natural)  # until no natural disagreement is left
    probs = sum(clf.predict_proba(x[ev][clean]) for clf in zoo) / len(zoo)
    labels = labels[clean].copy()
    idx = np.flatnonzero(labels == 0)[::6]
    labels[idx] = 6
    return preds[:, clean], probs, emb[clean], labels, idx


def test_consensus_errors_rank_the_planted_label_errors_first(planted):
    preds, probs, _, labels, idx = planted
    got = consensus_errors(preds, labels, num_classes=10, min_share=0.75, mean_probs=probs)
    assert set(got.positions[:len(idx)].tolist()) == set(idx.tolist())
    assert (got.wrong_class[:len(idx)] == 0).all() and (got.share[:len(idx)] >= 0.75).all()
    assert (np.diff(got.share) <= 0).all()
    # without probabilities the planted samples still lead (all at the top share)
    plain = consensus_errors(preds, labels, num_classes=10, min_share=0.75)
    assert set(idx.tolist()) <= set(plain.positions[plain.share == 1.0].tolist())


def test_neighbour_disagreement_ranks_the_planted_label_errors_first(planted):
    _, _, x, labels, idx = planted
    got = neighbour_disagreement(x, labels, k=10, num_classes=10)
    assert set(got.positions[:len(idx)].tolist()) == set(idx.tolist())
    assert (got.plurality[:len(idx)] == 0).all()


def test_taxonomy_and_confusions_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    top = np.array([[0, 1], [1, 0], [0, 2], [1, 0], [1, 2], [1, 0], [2, 1]])
    assert mistake_counts(labels, top) == {"n": 7, "correct": 3, "near_miss": 2, "far_miss": 2}
    assert confusion_pairs(labels, top[:, 0], num_classes=3, top=5).tolist() == [[2, 1, 2], [0, 1, 1], [1, 0, 1]]
    assert confusion_pairs(labels, top[:, 0], num_classes=3, top=1).tolist() == [[2, 1, 2]]


def test_near_misses_with_k_2_on_hand_made_logits():
    logits = np.array([[3.0, 2.0, 1.0, 0.0],   # label 0: right
                       [2.0, 3.0, 1.0, 0.0],   # label 0, second: a near miss
                       [1.0, 3.0, 2.0, 0.0],   # label 3, fourth: far
                       [1.0, 0.0, 3.0, 2.0],   # label 3, second: near
                       [2.0, 2.0, 0.0, 1.0],   # label 1, tied with class 0, which ranks first: near
                       [0.0, 1.0, 3.0, 2.0]])  # label 1, third: near with k = 3, far with k = 2
    labels = np.array([0, 0, 3, 3, 1, 1])
    assert mistake_counts(labels, topk(logits, k=2)) == {"n": 6, "correct": 1, "near_miss": 3, "far_miss": 2}
    assert mistake_counts(labels, topk(logits, k=3)) == {"n": 6, "correct": 1, "near_miss": 4, "far_miss": 1}
    assert mistake_counts(labels, topk(logits, k=1)) == {"n": 6, "correct": 1, "near_miss": 0, "far_miss": 5}


def test_near_miss_k_is_5_from_100_classes_on_and_2_below_unless_declared():
    assert near_miss_k(None, num_classes=10) == 2 and near_miss_k(None, num_classes=99) == 2
    assert near_miss_k(None, num_classes=100) == 5 and near_miss_k(None, num_classes=1000) == 5
    assert near_miss_k(None, num_classes=2) == 1 and near_miss_k(3, num_classes=10) == 3
    with pytest.raises(ValueError, match="at least 2 classes"):
        near_miss_k(None, num_classes=1)
    for bad in (0, 10, 11):
        with pytest.raises(ValueError, match=r"mistakes.near_miss_k must lie in \[1, 9\].*10 classes"):
            near_miss_k(bad, num_classes=10)


def test_boundary_checks():
    with pytest.raises(ValueError, match="min_share"):
        consensus_errors(np.zeros((2, 3), int), np.zeros(3, int), num_classes=2, min_share=0)
    with pytest.raises(ValueError, match="labels"):
        consensus_errors(np.zeros((2, 3), int), np.zeros(4, int), num_classes=2, min_share=0.5)
    with pytest.raises(ValueError, match="k must"):
        neighbour_disagreement(np.zeros((3, 2)), np.zeros(3, int), k=3, num_classes=2)
