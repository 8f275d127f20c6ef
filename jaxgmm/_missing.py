"""Values missing at random (``missing="em"``): EM that uses every observed coordinate
(Ghahramani & Jordan 1994; McLachlan & Krishnan, ch. 2). NaN marks a missing value.

For a row with observed coordinates o and missing ones m, under a component with mean mu and
covariance S:

* its density is the marginal over o, ``N(x_o | mu_o, S_oo)``, which is what the E-step, the
  lower bound, ``score_samples`` and ``predict`` use;
* the M-step reads the complete-data statistics in expectation: ``x_m`` replaced by its
  conditional mean ``mu_m + S_mo S_oo^-1 (x_o - mu_o)``, and the scatter given the conditional
  covariance ``S_mm - S_mo S_oo^-1 S_om`` besides. Every covariance model's M-step depends on
  the data through these per-component scatters only, so every model (and the prior) takes
  them as they are.

The computation is per row, without grouping rows by their pattern of missing values (a data
set with values missing at random has nearly as many patterns as rows once D passes ~10), and
with the precision: only each row's block of it over the missing coordinates is factored
(``_statistics.missing_moments``, where the algebra is), padded to one of a few widths chosen per
block of rows, the rows sorted by their number of missing values (:func:`rows_to_fit`). That
keeps ``vmap`` over restarts and the sums over blocks of rows as they are; a diagonal model
needs no factorisation at all. bench/missing.py measures the cost.
"""

from __future__ import annotations

import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._blocks import default_block_size
from ._programs import program
from ._statistics import (
    diagonal,
    missing_moments,
    mixture_log_norm,
    placed,
    transposed_factor,
)

MISSING = ("error", "em")


def check_missing(missing) -> bool:
    """Whether ``missing`` (``"error"`` or ``"em"``) lets NaN mark missing values."""
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    return missing == "em"


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside jaxgmm, from the caller of this
    function's caller: a warning then points at the user's line, however deep it was raised."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("jaxgmm"):
        frame, level = frame.f_back, level + 1
    return level


def rows_to_fit(X, sample_weight, name: str = "X"):
    """``(X, sample_weight, width)`` for a fit, in one look at the data on the host: the rows
    whose every value is missing left out (they carry no information; a warning says how
    many), the others in order of their number of missing values (a block of rows is then
    factored at its own width, ``_statistics.by_width``, most of them narrow; the order changes
    nothing else), and ``width`` the most values missing in a row (0: none, and nothing is
    reordered). A column missing in every row is refused."""
    nan = np.isnan(np.asarray(X))
    never = np.flatnonzero(nan.all(axis=0))
    if len(never):
        many = len(never) > 1
        raise ValueError(
            f"{name}: column{'s' * many} {', '.join(map(str, never))} "
            f"{'are' if many else 'is'} missing in every row; drop {'them' if many else 'it'} "
            f"(nothing can be learned about {'them' if many else 'it'})"
        )
    counts = nan.sum(axis=1)
    empty = counts == X.shape[1]
    if empty.any():
        rows = np.flatnonzero(empty)
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        warnings.warn(
            f"{name}: {len(rows)} row{'s' * (len(rows) > 1)} with every value missing "
            f"({shown}) left out of the fit: they carry no information",
            UserWarning,
            stacklevel=_caller_level(),
        )
    width = int(counts[~empty].max(initial=0))
    if not width:
        return X, sample_weight, 0
    order = np.flatnonzero(~empty)[np.argsort(counts[~empty], kind="stable")]
    return X[order], None if sample_weight is None else sample_weight[order], width


def mean_filled(X, sample_weight=None):
    """``X`` with each missing value replaced by the (weighted) mean of its column's observed
    values: what the default prior is computed from."""
    observed = ~jnp.isnan(X)
    w = jnp.ones(X.shape[0], X.dtype) if sample_weight is None else jnp.asarray(sample_weight)
    seen = w[:, None] * observed
    mean = jnp.sum(seen * jnp.where(observed, X, 0.0), axis=0) / jnp.sum(seen, axis=0)
    return jnp.where(observed, X, mean)


@program(static_argnames=("unit", "n_draws", "width"))
def imputations(X, params, key, *, unit, n_draws: int, width: int):
    """``X`` with every missing value (NaN) replaced by its conditional mean under the mixture
    (``(N, D)``), and ``n_draws`` draws from the conditional mixture (``(n_draws, N, D)``; none
    for 0): a component drawn from the row's posterior over components, then its missing values
    from that component's conditional normal. Observed values are kept as they are. ``width``:
    at least the most values missing in a row."""
    n_components, n_features = params.means.shape

    def one_row(row):
        xb, index = row
        moments = missing_moments(xb[None, :], params, unit, width)
        completed, conditional = moments.completed[:, 0], moments.conditional[:, 0]
        weighted = moments.log_density[:, 0] + jnp.log(params.weights)
        log_resp = weighted - mixture_log_norm(weighted, params, axis=0)
        observed = ~jnp.isnan(xb)
        mean = jnp.where(observed, xb, jnp.exp(log_resp) @ completed)
        if n_draws == 0:
            return mean, None
        pick_key, normal_key = jax.random.split(jax.random.fold_in(key, index))
        picks = jax.random.categorical(pick_key, log_resp, shape=(n_draws,))
        if diagonal(unit):
            normal = jax.random.normal(normal_key, (n_draws, n_features), X.dtype)
            noise = jnp.sqrt(conditional[picks]) * normal
        else:  # M^T z over the slots (C = M^T M), then put in place
            normal = jax.random.normal(normal_key, (n_draws, width), X.dtype)
            factors = transposed_factor(moments.inverse, width)[:, 0][picks]
            over_slots = jnp.einsum("nij,nj->ni", factors, normal)
            noise = placed(over_slots, moments.slots[0], moments.valid[0], n_features)
        return mean, jnp.where(observed, xb, completed[picks] + noise)

    rows = (X, jnp.arange(X.shape[0]))
    size = default_block_size(X.shape[0], n_components, n_features * n_features)
    means, draws = lax.map(one_row, rows, batch_size=size)
    if draws is None:
        return means, jnp.zeros((0, *X.shape), X.dtype)
    return means, jnp.swapaxes(draws, 0, 1)
