"""The verify table's numbers."""

import numpy as np

from oakpipe.verify.metrics import compare


def test_psnr_and_relative_error_of_an_image():
    ref = np.zeros((1, 3, 8, 8), np.float32)
    ref[..., 0] = 1.0  # range 1
    got = ref + 0.01
    result = compare(ref, got)
    np.testing.assert_allclose(result.max_abs, 0.01, rtol=1e-4)
    np.testing.assert_allclose(result.psnr_db, 40.0, rtol=1e-3)  # 10 log10(1 / 1e-4)
    assert result.cosine is None and result.nan == result.inf == 0


def test_non_finite_candidates_are_counted_and_worst():
    ref = np.ones((1, 3, 8, 8), np.float32)
    ref[0, 0, 0, 0] = 0
    got = ref.copy()
    got[0, 1, 2, 3] = np.nan
    got[0, 2, 2, 3] = np.inf
    result = compare(ref, got)
    assert (result.nan, result.inf) == (1, 1)
    assert result.psnr_db == float("-inf") and result.max_abs == float("inf")


def test_vectors_use_cosine():
    result = compare(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))
    assert result.psnr_db is None and result.cosine == 1.0
