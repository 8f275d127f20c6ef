"""Built-in data: the lesson's two Gaussian clusters."""

from __future__ import annotations

import numpy as np

LESSON_MEANS = np.array([[-2.0, 0.0], [2.0, 1.0]])
LESSON_COVARIANCE = 0.6 * np.eye(2)


def lesson_data(n_per_cluster: int = 100, seed: int = 42, *, return_labels: bool = False):
    """The lesson's data: ``2 * n_per_cluster`` points in 2-D, half from a Gaussian at (-2, 0),
    half from one at (2, 1), both with covariance 0.6 I, drawn with ``numpy.random`` ``seed``.

    Returns ``X (200, 2)`` float64, and the true labels ``(200,)`` when ``return_labels``.
    """
    rng = np.random.default_rng(seed)
    X = np.concatenate(
        [
            rng.multivariate_normal(mean, LESSON_COVARIANCE, size=n_per_cluster)
            for mean in LESSON_MEANS
        ]
    )
    labels = np.repeat(np.arange(len(LESSON_MEANS)), n_per_cluster)
    return (X, labels) if return_labels else X
