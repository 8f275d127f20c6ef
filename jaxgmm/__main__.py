"""``python -m jaxgmm``: the lesson, fitted and printed."""

import jax
import numpy as np

from . import fit, lesson_data


def main() -> None:
    X = lesson_data().astype(np.float32)
    result = fit(jax.random.key(0), X, 2, covariance_type="full")
    trace = np.asarray(result.lower_bounds)
    print(f"Lesson: {X.shape[0]} points, 2 components, full covariances")
    print(f"EM ran {int(result.n_iter)} iterations, converged: {bool(result.converged)}")
    print("lower bound (mean log-likelihood per point) per iteration:")
    for i, value in enumerate(trace, start=1):
        print(f"  {i:3d}  {value: .6f}")
    params = result.params
    for k in np.argsort(np.asarray(params.means)[:, 0]):
        print(
            f"component {k}: weight {float(params.weights[k]):.3f}  "
            f"mean {np.round(np.asarray(params.means[k]), 3)}  "
            f"covariance {np.round(np.asarray(params.covariances[k]), 3).tolist()}"
        )


if __name__ == "__main__":
    main()
