"""mclust's hierarchical start (``jaxgmm._hc``): against R's mclust, and against a brute force.

The mclust partitions were recorded by ``tests/data/mclust/make_reference.R`` (mclust 6.0.0):
``hclass(hc(X, "VVV", use="SVD"), G)`` for G = 1..6. Faithful's hierarchy hinges on exact ties
(its 16 duplicated rows, and pairs with one same change): breaking them any other way than
mclust's (last minimum in packed order, slots renumbered as mclust does) moves tens of rows at
G >= 3, so these comparisons also check the tie rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import read_matrix

from jaxgmm import _hc
from jaxgmm._hc import _cut, _svd_scale, _vvv_merges, hc_partitions
from jaxgmm.datasets import DATA_DIR

DATA = Path(__file__).parent / "data" / "mclust"
BENCH_DATA = DATA_DIR


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    return table


@pytest.mark.parametrize("name", ["faithful", "iris"])
def test_partitions_match_mclust(name):
    # R's datasets, same row order; iris without species
    X = read_matrix(BENCH_DATA / f"{name}.csv")
    reference = read_matrix(DATA / f"{name}_start.csv").astype(np.int64) - 1
    assert X.shape == {"faithful": (272, 2), "iris": (150, 4)}[name]
    rows, labels = hc_partitions(X, range(1, 7))
    np.testing.assert_array_equal(rows, np.arange(X.shape[0]))
    assert labels.shape == (6, X.shape[0])
    for g in range(6):
        table = _contingency(reference[:, g], labels[g])
        # the same partition up to relabelling: one nonzero per row and per column
        assert table.shape == (g + 1, g + 1), (name, g + 1, table)
        assert np.all((table > 0).sum(axis=0) == 1), (name, g + 1, table)
        assert np.all((table > 0).sum(axis=1) == 1), (name, g + 1, table)
    # one tree: each partition refines the next coarser one
    for g in range(1, 6):
        assert np.all((_contingency(labels[g], labels[g - 1]) > 0).sum(axis=1) == 1)


def _brute_force_partitions(Z: np.ndarray) -> np.ndarray:
    """hcVVV by recomputing every pair's change from its rows at every step (O(n^3))."""
    n, p = Z.shape
    alpha = np.sum((Z - Z.mean(axis=0)) ** 2) / (n * p)

    def term(idx):
        m = len(idx)
        Y = Z[idx] - Z[idx].mean(axis=0)
        W = Y.T @ Y
        reg = np.log((np.trace(W) + alpha) / m)
        if m <= max(p, 2):
            return m * reg
        return m * np.logaddexp(np.linalg.slogdet(W / m)[1], reg)

    slots = [[r] for r in range(n)]
    labels = [np.arange(n)]
    while len(slots) > 1:
        best, pick = np.inf, None
        for j in range(1, len(slots)):  # packed order; the last minimum wins
            for i in range(j):
                change = term(slots[i] + slots[j]) - (term(slots[i]) + term(slots[j]))
                if change <= best:
                    best, pick = change, (i, j)
        i, j = pick
        slots[i] = slots[i] + slots[j]
        slots[j] = slots[-1]  # the last slot's cluster moves into slot j
        slots.pop()
        current = np.empty(n, dtype=np.int64)
        for members in slots:
            current[members] = min(members)
        _, first, inverse = np.unique(current, return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first)] = np.arange(first.size)
        labels.append(rank[inverse])
    return np.array(labels[::-1])  # row K - 1: K clusters


@pytest.mark.parametrize(("n", "d"), [(30, 2), (24, 3)])
def test_incremental_search_matches_brute_force(n, d):
    rng = np.random.default_rng(n + d)
    X = np.concatenate([rng.normal(size=(n // 2, d)), 3.0 + 0.5 * rng.normal(size=(n // 2, d))])
    Z = _svd_scale(X)
    ks = list(range(1, n + 1))
    np.testing.assert_array_equal(_cut(_vvv_merges(Z, 1), n, ks), _brute_force_partitions(Z))


def test_a_kept_tree_cuts_as_its_own_datas_tree():
    """Trees are kept across calls (one per data set): each cut, whatever came before, is the
    cut of that data's own merge sequence."""
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))  # one shape, two trees
    _hc._trees.clear()
    for X in (first, second, first):
        for ks in ([1, 4], [3], [6, 2]):
            Z = _svd_scale(X)
            want = _cut(_vvv_merges(Z, min(ks)), len(X), ks)
            np.testing.assert_array_equal(hc_partitions(X, ks)[1], want)
    assert len(_hc._trees) == 2


def test_subset_is_seeded_and_sized():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3))
    rows, labels = hc_partitions(X, [2, 3], max_rows=150, seed=7)
    assert rows.shape == (150,) and labels.shape == (2, 150)
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < 1000
    again_rows, again_labels = hc_partitions(X, [2, 3], max_rows=150, seed=7)
    np.testing.assert_array_equal(rows, again_rows)
    np.testing.assert_array_equal(labels, again_labels)
    other_rows, _ = hc_partitions(X, [2, 3], max_rows=150, seed=8)
    assert not np.array_equal(rows, other_rows)
    # the subset's partitions are those of the subset's own rows
    np.testing.assert_array_equal(labels, hc_partitions(X[rows], [2, 3])[1])
    for k, lab in zip([2, 3], labels, strict=True):
        assert sorted(set(lab.tolist())) == list(range(k))


def test_constant_column_is_dropped():
    X = read_matrix(BENCH_DATA / "iris.csv")[:60]
    with_constant = np.column_stack([X, np.full(60, 2.5)])
    np.testing.assert_array_equal(
        hc_partitions(with_constant, [1, 2, 5])[1], hc_partitions(X, [1, 2, 5])[1]
    )


@pytest.mark.parametrize("ks", [[0], [2, 21], [2.5], [-1]])
def test_bad_number_of_components_raises(ks):
    X = np.random.default_rng(1).normal(size=(20, 2))
    with pytest.raises(ValueError, match="number of components"):
        hc_partitions(X, ks)


def test_number_of_components_beyond_subset_raises():
    X = np.random.default_rng(2).normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"1\.\.10 .*after subsampling"):
        hc_partitions(X, [11], max_rows=10)
    assert hc_partitions(X, [10], max_rows=10)[1].tolist() == [list(range(10))]


def test_bad_data_raises():
    with pytest.raises(ValueError, match="NaN"):
        hc_partitions(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), [1])
    with pytest.raises(ValueError, match="2-D"):
        hc_partitions(np.zeros(5), [1])
