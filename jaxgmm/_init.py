"""Initialisation of one restart, in JAX, from an explicit PRNG key (``"random"``) or from the
table of uniform numbers that ``jaxgmm._random`` draws from it (the other methods).

Every method yields responsibilities, and the initial parameters are one M-step from them:

* ``"kmeans"``: Lloyd iterations seeded by k-means++ (as scikit-learn, which uses its own KMeans);
  each point is given wholly to its cluster.
* ``"k-means++"``: greedy k-means++ centres; each point is given to its nearest centre.
* ``"random_from_data"``: K distinct points drawn at random (with probability proportional to their
  sample weight); each point is given to its nearest one.
* ``"hc"``: mclust's default start, its hierarchical clustering (VVV criterion, SVD-scaled data,
  at most 2,000 rows; ``jaxgmm._hc``), computed on the host and cut at each K; each clustered row
  is given wholly to its cluster, the others (beyond 2,000 rows) take no part in the first M-step.
  One tree serves every K of a grid; the start draws nothing, so one restart suffices.
* ``"random"``: responsibilities drawn uniformly and normalised (as scikit-learn). Every component
  then starts near the data's mean, close to a saddle point where the lower bound first moves
  very slowly: use a small ``tol`` with it, or the fit stops before the components separate.

For ``"k-means++"`` and ``"random_from_data"`` scikit-learn gives each component a single point,
hence a covariance of ``reg_covar`` only; assigning every point to its nearest centre instead gives
the components real covariances from the start (the first E-step of scikit-learn's version does
almost exactly that assignment).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._blocks import as_blocks, blockwise_sum, for_distances
from ._covariance import Diag, Full
from ._em import maximize, responsibility_statistics
from ._matmul_precision import with_matmul_precision
from ._params import GMMParams
from ._random import n_trials, uniform_table
from ._statistics import Statistics, scatter_statistics

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hc")

_LLOYD_MAX_ITER = 100
_LLOYD_RTOL = 1e-4  # scikit-learn's KMeans tolerance, relative to the mean feature variance


def _weights(X: Array, sample_weight: Array | None) -> Array:
    if sample_weight is not None:
        return sample_weight
    # not a constant XLA can see: it would fold k-means++'s cumulative sums of the weights at
    # compile time (1.5 s for 30,000 rows)
    return lax.optimization_barrier(jnp.ones(X.shape[0], X.dtype))


def _squared_distances(X: Array, centres: Array) -> Array:
    """``(N, K)`` squared Euclidean distances, as one matrix product."""
    sq = (
        jnp.sum(jnp.square(X), axis=1)[:, None]
        - 2.0 * X @ centres.T
        + jnp.sum(jnp.square(centres), axis=1)[None, :]
    )
    return jnp.maximum(sq, 0.0)


def _draw_index(u: Array, p: Array, row_shards: int) -> Array:
    """Row indices drawn with probability proportional to ``p (N,)``, one per uniform number
    of ``u`` (any shape): with ``u = jax.random.uniform(key)``, the draw of
    ``jax.random.choice(key, N, p=p)``. The cumulative sum is taken once, within each of
    ``row_shards`` equal parts, then offset by the totals of the parts before: XLA partitions
    that across devices, whereas a cumulative sum along a sharded axis took 500 ms instead of
    1 ms (N = 2e5, 2 CPU devices). One part is exactly the plain cumulative sum."""
    within = jnp.cumsum(p.reshape(row_shards, -1), axis=1)
    before = jnp.cumsum(within[:, -1]) - within[:, -1]
    cdf = (within + before[:, None]).reshape(-1)
    r = cdf[-1] * (1 - u)
    # searchsorted(cdf, r), as a reduction that partitions too
    return jnp.sum(cdf < r[..., None], axis=-1)


@with_matmul_precision
def kmeans_plusplus(key: Array, X: Array, n_clusters: int, sample_weight=None) -> Array:
    """Greedy k-means++ centres: each new centre is the best of ``2 + log(K)`` candidates
    drawn with probability proportional to weight times squared distance to the nearest centre
    so far (Arthur and Vassilvitskii; scikit-learn's trial count).

    Parameters
    ----------
    key : PRNG key
        The draws come from it as those of restart 0 of :func:`jaxgmm.fit`.
    X : (N, D) array
    n_clusters : int
    sample_weight : (N,) array, optional

    Returns
    -------
    (n_clusters, D) array
        The centres, rows of ``X``.
    """
    uniforms = uniform_table(key, np.zeros(1, np.int32), n_clusters, X.dtype)[0]
    return _kmeans_plusplus(uniforms, X, n_clusters, sample_weight)


def _kmeans_plusplus(
    uniforms: Array,
    X: Array,
    n_clusters: int,
    sample_weight: Array | None = None,
    n_active: Array | None = None,
    row_shards: int = 1,
) -> Array:
    """k-means++ from a table of uniform numbers ``(n_clusters, C)``: the first centre draws
    with ``uniforms[0, 0]``, candidate ``t`` of centre ``i`` with ``uniforms[i, t]``.

    With ``n_active`` (a traced int), only the first ``n_active`` centres are drawn (the rest
    are zeros, placeholders), and they equal those of an unpadded call with ``n_active``
    centres. ``row_shards``: into how many equal parts the rows of ``X`` are sharded across
    devices (the draws then sum per part; the same draws up to rounding).
    """
    n_features = X.shape[1]
    w = _weights(X, sample_weight)
    trials = n_trials(n_clusters)
    # With placeholders, only as many trials as an unpadded call with n_active centres would make.
    trial_used = (
        None
        if n_active is None
        else jnp.arange(trials) < 2 + jnp.floor(jnp.log(n_active.astype(jnp.float32)))
    )
    first = _draw_index(uniforms[0, 0], w / jnp.sum(w), row_shards)
    centres = jnp.zeros((n_clusters, n_features), X.dtype).at[0].set(X[first])
    closest = jnp.sum(jnp.square(X - X[first]), axis=1)

    def add_centre(i, carry):
        centres, closest = carry
        potential = w * closest
        total = jnp.sum(potential)
        # All points already on a centre (fewer distinct points than K): draw by weight alone.
        p = jnp.where(total > 0, potential / jnp.where(total > 0, total, 1.0), w / jnp.sum(w))
        candidates = _draw_index(uniforms[i, :trials], p, row_shards)
        trial_closest = jnp.minimum(closest[None, :], _squared_distances(X, X[candidates]).T)
        potentials = trial_closest @ w
        if trial_used is not None:
            potentials = jnp.where(trial_used, potentials, jnp.inf)
        best = jnp.argmin(potentials)
        return centres.at[i].set(X[candidates[best]]), trial_closest[best]

    last = n_clusters if n_active is None else jnp.minimum(n_active, n_clusters)
    centres, _ = lax.fori_loop(1, last, add_centre, (centres, closest))
    return centres


def _distinct_points(
    uniforms: Array, X: Array, n_points: int, sample_weight: Array | None, row_shards: int
) -> Array:
    """``n_points`` distinct rows of ``X`` drawn one after the other with probability
    proportional to their weight (``uniforms[i, 0]`` for the i-th), without replacement."""
    w = _weights(X, sample_weight)

    def draw(i, carry):
        index, left = carry
        row = _draw_index(uniforms[i, 0], left, row_shards)
        return index.at[i].set(row.astype(index.dtype)), left.at[row].set(0.0)

    index, _ = lax.fori_loop(0, n_points, draw, (jnp.zeros(n_points, jnp.int32), w))
    return X[index]


def _nearest(X: Array, centres: Array, active: Array | None) -> Array:
    """Each row's nearest centre among those ``active`` (all if None)."""
    # ||x - c||^2 less ||x||^2, the same for every centre of a row
    d2 = jnp.sum(jnp.square(centres), axis=1)[None, :] - 2.0 * X @ centres.T
    if active is not None:
        d2 = jnp.where(active[None, :], d2, jnp.inf)
    return jnp.argmin(d2, axis=1)


def _sums_by_label(labels: Array, wb: Array, xb: Array, n_labels: int) -> tuple[Array, Array]:
    """The sums of the weights ``wb`` and of the weighted rows of ``xb`` per label."""
    if jax.default_backend() == "cpu":
        # added row by row (a scatter): a Lloyd iteration over 1e5 x 8, K = 9 in 1.5 ms against
        # 3.7 ms for the product of one-hot rows (2-core VM, 2026-12-06); on an accelerator the
        # scatter's atomic additions would make the rounding differ from run to run
        return (
            jax.ops.segment_sum(wb, labels, n_labels),
            jax.ops.segment_sum(xb * wb[:, None], labels, n_labels),
        )
    member = jax.nn.one_hot(labels, n_labels, dtype=xb.dtype) * wb[:, None]
    return jnp.sum(member, axis=0), member.T @ xb


def lloyd(
    X: Array,
    centres: Array,
    sample_weight: Array | None = None,
    active: Array | None = None,
    blocks=None,
) -> Array:
    """Lloyd's k-means iterations from ``centres``, until the squared centre shift is below
    ``1e-4`` times the mean feature variance (at most 100 iterations), reading the data in
    blocks. An empty cluster keeps its centre; centres outside the mask ``active`` take no
    points."""
    blocks = for_distances(as_blocks(blocks or X.shape[0]), X.shape[0], *centres.shape)
    w = _weights(X, sample_weight)
    mean = (w @ X) / jnp.sum(w)
    tol = _LLOYD_RTOL * jnp.mean((w @ jnp.square(X - mean)) / jnp.sum(w))

    def sums(xb, wb, rows, centres, active):
        return _sums_by_label(_nearest(xb, centres, active), wb, xb, centres.shape[0])

    def update(centres):
        mass, total = blockwise_sum(sums, X, sample_weight, blocks, centres, active)
        new = total / jnp.where(mass > 0, mass, 1.0)[:, None]
        return jnp.where((mass > 0)[:, None], new, centres)

    def not_done(carry):
        i, _, shift = carry
        return (i < _LLOYD_MAX_ITER) & (shift > tol)

    def step(carry):
        i, centres, _ = carry
        new = update(centres)
        return i + 1, new, jnp.sum(jnp.square(new - centres))

    inf = jnp.asarray(jnp.inf, X.dtype)
    _, centres, _ = lax.while_loop(not_done, step, (0, centres, inf))
    return centres


def kmeans_centres(
    uniforms: Array,
    X: Array,
    n_components: int,
    sample_weight: Array | None = None,
    n_active: Array | None = None,
    blocks=None,
) -> Array:
    """The centres of the "kmeans" start of one restart: k-means++ seeds from the table
    ``uniforms``, then :func:`lloyd`."""
    active, row_shards = _active_and_shards(n_components, n_active, blocks)
    centres = _kmeans_plusplus(uniforms, X, n_components, sample_weight, n_active, row_shards)
    return lloyd(X, centres, sample_weight, active, blocks)


def nearest_statistics(
    X: Array,
    centres: Array,
    sample_weight: Array | None = None,
    n_active: Array | None = None,
    blocks=None,
    *,
    dense: bool,
) -> Statistics:
    """The statistics of every row given wholly to its nearest centre, around the centres:
    the "kmeans" start up to its M-step, given its centres (:func:`kmeans_centres`). Neither
    depends on the covariance model, so a grid computes them once and each model's start is
    its M-step from them (method "statistics"): with ``dense``, the scatter as ``(K, D, D)``
    matrices, from which every model takes its own (``unit.scatter_of_dense``); otherwise
    their diagonals ``(K, D)``, all that models of ``diagonal_scatter`` read."""
    n_components = centres.shape[0]
    active, _ = _active_and_shards(n_components, n_active, blocks)
    shape = Full if dense else Diag  # the units whose scatter has the shape wanted

    def hard(xb, wb, rows, centres, active):
        member = jax.nn.one_hot(_nearest(xb, centres, active), n_components, dtype=X.dtype)
        return scatter_statistics(xb, member.T * wb[None, :], centres, shape)

    return blockwise_sum(hard, X, sample_weight, blocks or X.shape[0], centres, active)


def _active_and_shards(n_components: int, n_active: Array | None, blocks):
    """The mask of the active components (None: all), and into how many parts the rows are
    sharded across devices."""
    active = None if n_active is None else jnp.arange(n_components) < n_active
    mesh = None if blocks is None else as_blocks(blocks).mesh
    return active, 1 if mesh is None else mesh.size


def initial_responsibilities(
    key: Array,
    uniforms: Array,
    X: Array,
    n_components: int,
    method: str,
    sample_weight: Array | None = None,
    n_active: Array | None = None,
    blocks=None,
):
    """Starting responsibilities of one restart, as a function of a block of rows and the arrays
    it needs, and the components' centres: returns ``(resp, operands, centres)`` with
    ``resp(xb, rows, *operands) -> (K, B)`` (the centres are zero for "random").
    ``"random"`` draws from ``key``, "hc" reads its labels ``(N,)`` (-1: no part) from
    ``uniforms``, the other methods draw from the table
    ``uniforms`` (see ``jaxgmm._random``).
    With ``n_active``, only the first ``n_active`` components are used,
    and they equal those of the unpadded call with ``n_components=n_active`` (so a padded grid
    of K reproduces separate fits)."""
    active, row_shards = _active_and_shards(n_components, n_active, blocks)
    if method == "random":
        centres = jnp.zeros((n_components, X.shape[1]), X.dtype)
        return _random_resp(n_components, X.dtype), (key, active), centres
    if method == "hc":
        return _given_labels(uniforms, X, n_components, sample_weight, blocks)
    if method == "random_from_data":
        centres = _distinct_points(uniforms, X, n_components, sample_weight, row_shards)
    elif method == "k-means++":
        centres = _kmeans_plusplus(uniforms, X, n_components, sample_weight, n_active, row_shards)
    elif method == "kmeans":
        centres = kmeans_centres(uniforms, X, n_components, sample_weight, n_active, blocks)
    else:
        raise ValueError(f"init must be one of {INIT_METHODS} or a GMMParams, got {method!r}")

    def nearest(xb, rows, centres, active):
        return jax.nn.one_hot(_nearest(xb, centres, active), n_components, dtype=X.dtype).T

    return nearest, (centres, active), centres


def _given_labels(labels: Array, X: Array, n_components: int, sample_weight, blocks):
    """Responsibilities of hard labels ``(N,)`` (-1: the row takes no part), and the labelled
    clusters' means as centres (the M-step's scatter is taken around them)."""

    def resp(xb, rows, labels):
        return jax.nn.one_hot(labels[rows], n_components, dtype=X.dtype).T

    def sums(xb, wb, rows, labels):
        weighted = resp(xb, rows, labels) * wb[None, :]
        return jnp.sum(weighted, axis=1), weighted @ xb

    counts, totals = blockwise_sum(sums, X, sample_weight, blocks or X.shape[0], labels)
    centres = totals / jnp.maximum(counts, jnp.finfo(X.dtype).tiny)[:, None]
    return resp, (labels,), centres


def _random_resp(n_components: int, dtype):
    def resp(xb, rows, key, active):
        # A key per component and row: the numbers depend neither on the blocks nor on how many
        # components there are.
        def column(k):
            column_key = jax.random.fold_in(key, k)
            return jax.vmap(
                lambda r: jax.random.uniform(jax.random.fold_in(column_key, r), (), dtype)
            )(rows)

        u = jax.vmap(column)(jnp.arange(n_components))
        if active is not None:
            u = jnp.where(active[:, None], u, 0.0)
        return u / jnp.sum(u, axis=0, keepdims=True)

    return resp


def _data_covariance(X: Array, sample_weight: Array | None, blocks) -> Array:
    """The (weighted) covariance of ``X``, in one pass of raw moments: exact enough for the
    centred data the engine gives, where the mean is zero up to rounding."""

    def moments(xb, wb, rows):
        return jnp.sum(wb), wb @ xb, (xb * wb[:, None]).T @ xb

    total, first, second = blockwise_sum(moments, X, sample_weight, blocks)
    mean = first / total
    cov = second / total - mean[:, None] * mean[None, :]
    return (cov + cov.T) / 2


def initial_statistics(
    key: Array,
    uniforms: Array,
    X: Array,
    n_components: int,
    method: str,
    *,
    unit,
    reg_covar,
    sample_weight: Array | None = None,
    n_active: Array | None = None,
    blocks=None,
) -> tuple[Statistics, GMMParams]:
    """What the start of one restart of centred data ``X`` takes its M-step from (see
    :func:`initial_params`): the statistics of :func:`initial_responsibilities` around the
    components' centres, accumulated in one pass over ``blocks`` (a block size or a
    ``Blocks``; all at once by default), and the parameters they are around, whose means and
    covariance (the data's) an empty component keeps and whose weights say which components
    are switched on. For method "statistics", ``uniforms`` holds the centres and statistics
    of :func:`nearest_statistics`, and there is no pass."""
    blocks = as_blocks(blocks or X.shape[0])
    if method == "statistics":
        centres, stats = uniforms
        if stats.scatter.ndim == 3:  # (K, D, D) matrices: this model's own scatter from them
            stats = stats._replace(scatter=unit.scatter_of_dense(stats.scatter))
    else:
        resp, operands, centres = initial_responsibilities(
            key, uniforms, X, n_components, method, sample_weight, n_active, blocks
        )
        stats = responsibility_statistics(
            X,
            lambda xb, wb, rows, *ops: resp(xb, rows, *ops) * wb[None, :],
            centres,
            unit=blocks.factoring(unit),
            sample_weight=sample_weight,
            blocks=blocks,
            resp_operands=operands,
        )
    data_cov = unit.pooled(_data_covariance(X, sample_weight, blocks), n_components)
    on = jnp.ones(n_components, X.dtype)
    if n_active is not None:
        on = jnp.where(jnp.arange(n_components) < n_active, on, 0.0)
    around = GMMParams(
        weights=on,  # only whether each is switched on matters
        means=centres,
        covariances=unit.add_to_diagonal(data_cov, reg_covar),
        precisions_cholesky=None,
    )
    return stats, around


def initial_params(
    key: Array, uniforms: Array, X: Array, n_components: int, method: str, *, prior=None, **start
) -> GMMParams:
    """Starting parameters for one restart of centred data ``X``: one M-step (with mclust's
    ``prior``, if given) from the statistics of :func:`initial_statistics`, which takes the
    other arguments. An empty component keeps its centre and takes the data's covariance.
    Components beyond ``n_active`` get weight exactly zero (switched off, see :func:`m_step`)
    and those as finite placeholders."""
    stats, around = initial_statistics(key, uniforms, X, n_components, method, **start)
    return maximize(
        X,
        None,
        n_components,
        unit=start["unit"],
        reg_covar=start["reg_covar"],
        sample_weight=start.get("sample_weight"),
        previous=around,
        blocks=start.get("blocks") or X.shape[0],
        prior=prior,
        stats=stats,
    )
