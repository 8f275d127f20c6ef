"""Built-in data: the lesson's two Gaussian clusters, and R's ``faithful`` and ``iris``.

``faithful`` and ``iris`` are the data sets of R's ``datasets`` package (public domain), as
R's ``write.csv`` writes them, so that examples, tests and benchmarks read the same numbers as
mclust does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LESSON_MEANS = np.array([[-2.0, 0.0], [2.0, 1.0]])
LESSON_COVARIANCE = 0.6 * np.eye(2)
DATA_DIR = Path(__file__).with_name("data")


def lesson_data(n_per_cluster: int = 100, seed: int = 42, *, return_labels: bool = False):
    """The lesson's data: points in 2-D, half from a Gaussian at (-2, 0), half from one at
    (2, 1), both with covariance 0.6 I.

    Parameters
    ----------
    n_per_cluster : int
    seed : int
        Of ``numpy.random.default_rng``.
    return_labels : bool
        Also return the true labels.

    Returns
    -------
    X : (2 n_per_cluster, 2) float64 array
    labels : (2 n_per_cluster,) int array
        Only with ``return_labels``.

    Examples
    --------
    >>> X, labels = lesson_data(return_labels=True)
    >>> X.shape, X.dtype, labels[:3], labels[-3:]
    ((200, 2), dtype('float64'), array([0, 0, 0]), array([1, 1, 1]))
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


def faithful() -> np.ndarray:
    """Old Faithful's eruptions: ``(272, 2)`` float64, the eruption's duration (minutes) and the
    wait before it (minutes), R's ``faithful``.

    Examples
    --------
    >>> X = faithful()
    >>> X.shape, X[0]
    ((272, 2), array([ 3.6, 79. ]))
    """
    return _read("faithful.csv")


def iris(*, return_labels: bool = False):
    """Fisher's (Anderson's) irises: ``(150, 4)`` float64, sepal length, sepal width, petal
    length and petal width (cm), R's ``iris`` without its species column.

    Parameters
    ----------
    return_labels : bool
        Also return the species ``(150,)``: 0 setosa, 1 versicolor, 2 virginica (50 each, in
        that order).

    Examples
    --------
    >>> X, species = iris(return_labels=True)
    >>> X.shape, X[0], np.bincount(species)
    ((150, 4), array([5.1, 3.5, 1.4, 0.2]), array([50, 50, 50]))
    """
    X = _read("iris.csv")
    return (X, np.repeat(np.arange(3), 50)) if return_labels else X


def _read(name: str) -> np.ndarray:
    return np.loadtxt(DATA_DIR / name, delimiter=",", skiprows=1, dtype=np.float64)
