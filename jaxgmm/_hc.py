"""mclust's default starting partition: model-based agglomerative hierarchical clustering.

This is R's ``hclass(hc(X, modelName="VVV", use="SVD"), G)`` (what ``Mclust`` does by default,
``mclust.options(hcModelName="VVV", hcUse="SVD", subset=2000)``), in NumPy on the host.

* Scaling (``use="SVD"``, mclust's ``hc``): standardise each column (sd with n - 1), then
  ``Z = Xs V diag(1 / sqrt(d))`` with ``Xs = U diag(d) V'``. Note the square root: the columns
  of ``Z`` are uncorrelated with sums of squares ``d`` (not 1), so the data are only
  half-way sphered.
* Start: every row is its own cluster. (``hc``'s documented default, ``dupPartition``, grouping
  duplicated rows, is never used: ``hc`` forwards only the arguments it was given to
  ``hcVVV``, whose own default is singletons.)
* Criterion (Banfield & Raftery 1993, Biometrics 49:803-821; Fraley 1998, SIAM J. Sci.
  Comput. 20:270-281, for the unconstrained model): a cluster of n rows with scatter matrix W
  (sum of outer products about its mean) costs n log det(W / n); the pair merged is the one
  whose merge raises the total least.
  mclust regularises it (``hcVVV``, ``vvvtij`` in its ``mclust.f``) so that small or flat
  clusters are defined:

      term(n, W) = n log( det(W / n) + beta (tr W + alpha) / n )      for n > max(p, 2),
      term(n, W) = n log( beta (tr W + alpha) / n )                     otherwise

  (p the number of columns of Z; n = 2, two singletons, takes the second form even for p = 1),
  with beta = 1 and alpha = traceW(Z / sqrt(n p)) = tr(scatter of Z) / (n p), which is
  sum(d) / (n p) for the SVD-scaled Z (``hcVVV``'s defaults alpha = beta = 1 multiply these).
  A singleton costs log(alpha beta). The change for merging clusters a and b is
  term(a U b) - (term(a) + term(b)), and W(a U b) = W(a) + W(b)
  + (n_a n_b / n) (mean_b - mean_a)(mean_b - mean_a)'.
* Order and ties, as mclust: clusters sit in slots 0..L-1 (initially the rows, in order). The
  pairs are scanned as the packed lower triangle (slot j = 1.. outer, slot i < j inner) and the
  last minimum wins, i.e. the largest j, then the largest i. After merging (i < j) the union
  stays in slot i and the cluster in the last slot moves into slot j. Ties are real: every
  duplicated pair has the change -2 log 2 (the least two singletons can have), and a row's
  pairs with two equal rows tie. On R's faithful (16 duplicated pairs) another tie rule, or
  another row order, moves tens of rows of the G >= 3 partitions.

The search keeps the n x n table of pair changes and, per slot j, the best pair (i < j); a
merge recomputes one row of changes (the union against every other cluster, vectorised, one
batched determinant) and rescans only the slots whose best pair it touched: O(n^2) memory and
roughly O(n^2) time, as mclust's own Fortran (8 n^2 bytes for the table: 32 MB at 2,000 rows).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

_ALPHA = 1.0  # hcVVV's alpha (a factor on traceW(Z / sqrt(n p)))
_BETA = 1.0  # hcVVV's beta
_EPS = np.finfo(np.float64).eps  # hcVVV's floor on alpha (.Machine$double.eps)

# Merge sequences of the data clustered last (a cut at K is a prefix of the cut at 1): fits of
# the same data for several K, one call each (a loop over K, mclust's bootstrap LRT), build
# the tree once. A few, each at most (2,000 x 2) integers.
_KEPT_TREES = 4
_trees: OrderedDict = OrderedDict()
_trees_lock = threading.Lock()


def hc_partitions(
    X: np.ndarray,
    n_components_list: Sequence[int],
    *,
    max_rows: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """mclust's hierarchical starting partitions, one per number of components.

    Args:
        X: data, shape (N, D).
        n_components_list: the numbers of clusters K wanted; every partition is a cut of one
            and the same merge sequence.
        max_rows: when N exceeds it, the clustering uses a uniform random subset of this many
            rows (as ``Mclust`` with ``mclust.options("subset")``), else all rows.
        seed: seed of that subset (NumPy ``default_rng``).

    Returns:
        ``(rows, labels)``: ``rows`` the sorted indices of the rows used, ``labels`` an int array
        (len(n_components_list), len(rows)) with labels 0..K-1 in order of first appearance.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    n_total = X.shape[0]
    if n_total > max_rows:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n_total, size=int(max_rows), replace=False))
    else:
        rows = np.arange(n_total)
    n = rows.size
    ks = [int(k) for k in n_components_list]
    for k, given in zip(ks, n_components_list, strict=True):
        if k != given or not 1 <= k <= n:
            raise ValueError(
                f"each number of components must be an integer in 1..{n} (the rows "
                f"clustered{' after subsampling' if n < n_total else ''}), got {given!r}"
            )
    if not ks:
        return rows, np.zeros((0, n), dtype=np.int64)
    merges = _kept_merges(_svd_scale(X[rows]), min(ks)) if min(ks) < n else np.zeros((0, 2), int)
    return rows, _cut(merges, n, ks)


def _kept_merges(Z: np.ndarray, min_clusters: int) -> np.ndarray:
    """:func:`_vvv_merges`, the whole tree built once per data set (of the last few)."""
    key = (Z.shape, hashlib.sha256(np.ascontiguousarray(Z).tobytes()).digest())
    with _trees_lock:
        merges = _trees.get(key)
        if merges is not None:
            _trees.move_to_end(key)
    if merges is None:
        merges = _vvv_merges(Z, 1)
        with _trees_lock:
            _trees[key] = merges
            while len(_trees) > _KEPT_TREES:
                _trees.popitem(last=False)
    return merges[: Z.shape[0] - min_clusters]


def _svd_scale(X: np.ndarray) -> np.ndarray:
    """mclust's ``hc(use="SVD")`` transformation (see the module docstring)."""
    n = X.shape[0]
    if n < 2:
        return np.zeros((n, 1))
    with np.errstate(divide="ignore", invalid="ignore"):  # constant columns, dropped below
        Xs = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    Xs = Xs[:, np.all(np.isfinite(Xs), axis=0)]  # mclust drops columns made NaN (constant ones)
    if Xs.shape[1] == 0:
        return np.zeros((n, 1))
    _, d, vt = np.linalg.svd(Xs, full_matrices=False)
    # mclust would divide by a zero singular value (collinear columns) and fail; keep the
    # directions that carry variance instead.
    keep = d > d[0] * max(Xs.shape) * _EPS
    return (Xs @ vt[keep].T) / np.sqrt(d[keep])


def _vvv_merges(Z: np.ndarray, min_clusters: int) -> np.ndarray:
    """Merge sequence of hcVVV down to ``min_clusters`` clusters.

    Returns an int array (n - min_clusters, 2) of the merged clusters' ids, scipy-style: ids
    below n are rows, id n + t is the cluster made by merge t.
    """
    n, p = Z.shape
    centred = Z - Z.mean(axis=0)
    alpha = max(_ALPHA * float(np.sum(centred * centred)) / (n * p), _EPS)
    beta = _BETA
    low = max(p, 2)  # up to this size mclust takes the scatter as singular (rank < p)

    def terms(cnt: np.ndarray, tr: np.ndarray, W: np.ndarray) -> np.ndarray:
        reg = np.log(beta * (tr + alpha) / cnt)
        out = cnt * reg
        full = np.flatnonzero((cnt > low) & (tr > 0.0))
        if full.size:
            c = cnt[full]
            # mclust takes |det| from a triangular factor; W is PSD, so sign only flags exact
            # singularity (then it keeps the regularised term alone, as vvvtij does).
            sign, logdet = np.linalg.slogdet(W[full] / c[:, None, None])
            ok = sign != 0
            out[full[ok]] = c[ok] * np.logaddexp(logdet[ok], reg[full[ok]])
        return out

    # Per-slot cluster statistics.
    cnt = np.ones(n)
    mean = Z.copy()
    scatter = np.zeros((n, p, p))
    trace = np.zeros(n)
    term = np.full(n, np.log(alpha * beta))
    ids = np.arange(n)

    # D[i, j] (i < j): change of the total for merging slots i and j; +inf elsewhere, so that a
    # column's minimum over all rows is its minimum over the pairs (i < j).
    # Two singletons: n = 2, tr W = |x_i - x_j|^2 / 2 (built in place: n x n floats twice).
    D = np.zeros((n, n))
    for k in range(p):
        diff = Z[:, None, k] - Z[None, :, k]
        diff *= diff
        D += diff
    del diff
    D *= 0.5
    D += alpha
    D *= beta / 2.0
    np.log(D, out=D)
    D *= 2.0
    D -= 2.0 * term[0]
    for r in range(n):
        D[r, : r + 1] = np.inf

    def last_min_rows(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # per column, the minimum over its rows and its last (largest) row among ties
        m = int(cols.max())
        sub = D[:m, cols]
        rows = m - 1 - np.argmin(sub[::-1], axis=0)
        return sub[rows, np.arange(cols.size)], rows

    best_val = np.full(n, np.inf)
    best_row = np.zeros(n, dtype=np.int64)
    if n > 1:
        cols = np.arange(1, n)
        best_val[1:], best_row[1:] = last_min_rows(cols)

    n_merges = n - min_clusters
    merges = np.empty((n_merges, 2), dtype=np.int64)
    L = n  # active slots 0..L-1
    for t in range(n_merges):
        j = L - 1 - int(np.argmin(best_val[L - 1 : 0 : -1]))  # last minimum over j = 1..L-1
        i = int(best_row[j])
        merges[t] = ids[i], ids[j]

        # The union goes to slot i.
        ni, nj = cnt[i], cnt[j]
        nij = ni + nj
        delta = mean[j] - mean[i]
        c = ni * nj / nij
        mean[i] = mean[i] + (nj / nij) * delta  # exact when the means are equal (duplicates)
        scatter[i] = scatter[i] + scatter[j] + c * np.outer(delta, delta)
        trace[i] = trace[i] + trace[j] + c * float(delta @ delta)
        cnt[i] = nij
        term[i] = terms(cnt[i : i + 1], trace[i : i + 1], scatter[i : i + 1])[0]
        ids[i] = n + t

        # The last slot's cluster moves into slot j.
        last = L - 1
        if j != last:
            cnt[j], mean[j], scatter[j] = cnt[last], mean[last], scatter[last]
            trace[j], term[j], ids[j] = trace[last], term[last], ids[last]
            D[:j, j] = D[:j, last]
            D[j, j + 1 : last] = D[j + 1 : last, last]
        L -= 1
        if L == 1:
            continue

        # Changes for merging the union with every other cluster.
        delta = mean[:L] - mean[i]
        nb = cnt[:L]
        n_ab = nb + nij
        c = nb * nij / n_ab
        W = scatter[:L] + scatter[i] + c[:, None, None] * (delta[:, :, None] * delta[:, None, :])
        tr = trace[:L] + trace[i] + c * np.einsum("ij,ij->i", delta, delta)
        W[i] = 0.0  # the union against itself: unused
        change = terms(n_ab, tr, W) - (term[i] + term[:L])
        D[:i, i] = change[:i]
        D[i, i + 1 : L] = change[i + 1 : L]

        # Refresh the per-column best pairs. Columns beyond i hold row i (and beyond j row j):
        # where their best was i or j it must be rescanned, elsewhere the new entries compete.
        cols = np.arange(i + 1, L)
        stale = (best_row[cols] == i) | (best_row[cols] == j) | (cols == j)
        keep = cols[~stale]
        for r, kc in ((i, keep), (j, keep[keep > j])):
            v = D[r, kc]
            win = (v < best_val[kc]) | ((v == best_val[kc]) & (r > best_row[kc]))
            best_val[kc[win]] = v[win]
            best_row[kc[win]] = r
        rescan = cols[stale]
        if i > 0:
            rescan = np.append(rescan, i)
        if rescan.size:
            best_val[rescan], best_row[rescan] = last_min_rows(rescan)
        best_val[L] = np.inf
    return merges


def _cut(merges: np.ndarray, n: int, ks: Sequence[int]) -> np.ndarray:
    """Labels (len(ks), n) of the partitions into K clusters, K in ``ks``, of one merge tree."""
    want: dict[int, list[int]] = {}
    for row, k in enumerate(ks):
        want.setdefault(n - k, []).append(row)  # the partition after n - k merges
    out = np.zeros((len(ks), n), dtype=np.int64)
    current = np.arange(n)  # cluster id of each row
    members = {r: [r] for r in range(n)}

    def record(step: int) -> None:
        if step in want:
            # labels 0..K-1 in order of first appearance (as mclust's partconv)
            _, first, inverse = np.unique(current, return_index=True, return_inverse=True)
            rank = np.empty(first.size, dtype=np.int64)
            rank[np.argsort(first)] = np.arange(first.size)
            out[want[step]] = rank[inverse]

    record(0)
    for t, (a, b) in enumerate(merges):
        joined = members.pop(int(a)) + members.pop(int(b))
        current[joined] = n + t
        members[n + t] = joined
        record(t + 1)
    return out
