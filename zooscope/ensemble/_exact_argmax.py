"""Is the argmax of two members' combined scores the label? Exactly, reading every class only where needed.

Pair ensembles (``zooscope.ensemble.blockwise``) and greedy ensemble growth (``zooscope.ensemble.agreement.greedy_ensemble``)
ask, for each sample, whether argmax_c a_c (+) b_c is the label y, where a and b are rows of non-negative
scores (probabilities, or a running sum of them) and (+) is a sum (the mean of probabilities) or a
product (the mean of log-probabilities: log is increasing, and a product of two float16/float32 numbers
is exact in float64, so no rounding decides a tie). A :class:`Summary` of each member -- its score of y,
its two strongest other classes' scores and the strongest one's class r -- settles almost every sample.
Since a_c <= a's second runner-up for every class c other than y and r_a:

- the best class other than y scores at most max(a_r (+) b[r_a], a_second (+) b_r), and at most the
  same with a and b swapped; a score of y above either bound wins;
- if r_a or r_b beats y, y does not win.

Only the samples that neither test settles combine their full rows. Combining is done in float64, ties
go to the lower class index as in numpy's argmax, and float rounding is monotone, so the bounds hold for
the computed values and the answers equal ``(a (+) b).argmax(-1) == y`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Summary", "summarise", "sum_is_label"]


class Summary(NamedTuple):
    """What the bounds need of one member, each [..., s] over s samples."""

    true: np.ndarray  # score of the label
    runner: np.ndarray  # highest score among the other classes
    runner_class: np.ndarray  # that class (the lowest index on ties)
    second: np.ndarray  # highest score among the classes other than the label and runner_class
    correct: np.ndarray  # bool: argmax == label


def summarise(scores: np.ndarray, labels: np.ndarray) -> Summary:
    """The summary of non-negative ``scores`` [..., s, C] for ``labels`` int [s]; ``scores`` is changed and restored."""
    cols = np.arange(len(labels))
    true = scores[..., cols, labels]
    correct = scores.argmax(-1) == labels
    scores[..., cols, labels] = -np.inf
    runner_class = scores.argmax(-1)
    runner = np.take_along_axis(scores, runner_class[..., None], -1)[..., 0]
    np.put_along_axis(scores, runner_class[..., None], -np.inf, -1)
    second = np.maximum(scores.max(-1), 0)  # 0 when there are only two classes (scores are non-negative)
    np.put_along_axis(scores, runner_class[..., None], runner[..., None], -1)
    scores[..., cols, labels] = true
    return Summary(true, runner, runner_class, second, correct)


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64)


def _beats(s_c: np.ndarray, c: np.ndarray, s_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether class c wins the argmax against the label: a higher score, or an equal one at a lower index."""
    return (s_c > s_y) | ((s_c == s_y) & (c < y))


def sum_is_label(
    a: Summary,
    b: Summary,
    labels: np.ndarray,
    *,
    b_at_a_runner: np.ndarray,
    a_at_b_runner: np.ndarray,
    full_rows: Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, np.ndarray]],
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.add,
) -> np.ndarray:
    """bool [..., s]: whether argmax_c combine(a_c, b_c) == label (in float64), for every position of the
    broadcast shape of ``a`` and ``b`` (e.g. one member against r partners: [s] and [r, s] give [r, s]).

    Args:
        a, b: the two members' summaries (:func:`summarise`), broadcastable; scores non-negative.
        labels: int [s].
        b_at_a_runner: b's score of a's runner-up class, [..., s]; a_at_b_runner: a's of b's.
        full_rows: given the positions the bounds leave open (a tuple of index arrays, as ``np.nonzero``
            gives, the last one the sample), the two members' full score rows there, each [k, C].
        combine: ``np.add`` (mean of scores) or ``np.multiply`` (mean of log-scores).
    """
    s_y = combine(_f64(a.true), b.true)
    s_ra = combine(_f64(a.runner), b_at_a_runner)
    s_rb = combine(_f64(a_at_b_runner), b.runner)
    wrong = _beats(s_ra, a.runner_class, s_y, labels) | _beats(s_rb, b.runner_class, s_y, labels)
    bound = np.minimum(np.maximum(s_ra, combine(_f64(a.second), b.runner)),
                       np.maximum(s_rb, combine(_f64(a.runner), b.second)))
    right = s_y > bound
    open_ = np.nonzero(~right & ~wrong)
    if len(open_[0]):
        rows_a, rows_b = full_rows(open_)
        right[open_] = combine(_f64(rows_a), rows_b).argmax(1) == labels[open_[-1]]
    return right
