"""zooscope._checks: the boundary checks name what they refuse."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope._checks import as_labels, check_rows


def test_rows_with_nan_inf_or_only_zeros_are_refused_with_the_name_and_count():
    good = np.ones((6, 3), np.float32)
    check_rows("m eval embeddings", good)
    for bad_value, rows in ((np.nan, [1]), (np.inf, [1, 4])):
        x = good.copy()
        x[rows, 0] = bad_value
        with pytest.raises(ValueError, match=rf"m eval embeddings: {len(rows)} of 6 rows hold NaN, inf or only zeros"):
            check_rows("m eval embeddings", x)
    x = good.copy()
    x[2] = 0
    with pytest.raises(ValueError, match=r"1 of 6 rows .* \(rows \[2\]\)"):
        check_rows("m eval logits", x)


def test_labels_are_checked_against_the_number_of_classes():
    assert as_labels(np.array([0, 2]), num_classes=3).dtype == np.int64
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got values in \[0, 3\]"):
        as_labels(np.array([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        as_labels(np.array([0.0, 1.0]))
    assert len(as_labels(np.array([], np.int64), allow_empty=True)) == 0
