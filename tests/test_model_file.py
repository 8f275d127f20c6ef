"""Saved models: a versioned npz with JSON metadata; every broken file named with its problem."""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from helpers import COVARIANCE_TYPES

import jaxgmm
from jaxgmm import GaussianMixture, ModelFileError

LESSON = jaxgmm.lesson_data()


@pytest.fixture(scope="module")
def fitted():
    return GaussianMixture(2, random_state=0).fit(LESSON)


def rewrite(source, target, *, drop=(), metadata=None, **arrays):
    """Copy a saved model, changing entries on the way."""
    with np.load(source, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files if name not in drop}
    if metadata is not None:
        entries["metadata"] = np.asarray(
            json.dumps(json.loads(str(entries["metadata"])) | metadata)
        )
    entries.update(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    target.write_bytes(buffer.getvalue())
    return target


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip(tmp_path, covariance_type, dtype):
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    gm.fit(LESSON.astype(dtype))
    path = tmp_path / "model.npz"
    gm.save(path)
    loaded = jaxgmm.load(path)
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
        "lower_bounds_",
    ):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gm, name))
        assert getattr(loaded, name).dtype == dtype
    assert (loaded.n_iter_, loaded.converged_, loaded.lower_bound_) == (
        gm.n_iter_,
        gm.converged_,
        gm.lower_bound_,
    )
    assert loaded.get_params() == gm.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(LESSON), gm.predict_proba(LESSON))
    with zipfile.ZipFile(path) as archive:  # plain arrays, no pickle
        assert sorted(archive.namelist()) == sorted(
            f"{n}.npy"
            for n in (
                "metadata",
                "weights",
                "means",
                "covariances",
                "precisions_cholesky",
                "lower_bounds",
            )
        )


def test_feature_names_survive(tmp_path):
    pd = pytest.importorskip("pandas")
    gm = GaussianMixture(2, random_state=0).fit(pd.DataFrame(LESSON, columns=["a", "b"]))
    gm.save(tmp_path / "m.npz")
    assert list(jaxgmm.load(tmp_path / "m.npz").feature_names_in_) == ["a", "b"]


def test_save_is_atomic_and_replaces(tmp_path, fitted):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old contents")
    fitted.save(path)
    assert jaxgmm.load(path).n_iter_ == fitted.n_iter_
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left


def test_save_before_fit(tmp_path):
    with pytest.raises(jaxgmm.NotFittedError):
        GaussianMixture(2).save(tmp_path / "m.npz")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match=r"nothing\.npz: no such file"):
        jaxgmm.load(tmp_path / "nothing.npz")
    with pytest.raises(ModelFileError, match="is a directory"):
        jaxgmm.load(tmp_path)


def test_truncated_file(tmp_path, fitted):
    fitted.save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.npz: not a readable jaxgmm model"):
        jaxgmm.load(tmp_path / "cut.npz")


def test_corrupt_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ModelFileError, match=r"junk\.npz: not a readable jaxgmm model"):
        jaxgmm.load(tmp_path / "junk.npz")


def test_other_npz_is_not_a_model(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ModelFileError, match="missing the 'metadata' entry"):
        jaxgmm.load(tmp_path / "other.npz")


def test_missing_key(tmp_path, fitted):
    fitted.save(tmp_path / "m.npz")
    rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", drop=("means",))
    with pytest.raises(ModelFileError, match=r"bad\.npz: missing the 'means' entry"):
        jaxgmm.load(tmp_path / "bad.npz")


def test_newer_format_version_is_refused(tmp_path, fitted):
    fitted.save(tmp_path / "m.npz")
    rewrite(tmp_path / "m.npz", tmp_path / "new.npz", metadata={"format_version": 99})
    with pytest.raises(ModelFileError, match="format version 99 by a newer jaxgmm"):
        jaxgmm.load(tmp_path / "new.npz")


def test_older_format_version_loads_with_a_warning(tmp_path, fitted):
    fitted.save(tmp_path / "m.npz")
    rewrite(tmp_path / "m.npz", tmp_path / "old.npz", metadata={"format_version": 0})
    with pytest.warns(UserWarning, match="format version 0 is older"):
        loaded = jaxgmm.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(loaded.means_, fitted.means_)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda gm: {"means": np.where(np.eye(2, dtype=bool), np.nan, gm.means_)},
            "The parameter 'means' contains non-finite values",
        ),
        (
            lambda gm: {"weights": gm.weights_ * 0.5},
            "The parameter 'weights' should be normalized",
        ),
        (
            lambda gm: {"covariances": gm.covariances_ * np.array([1.0, -1.0])[:, None, None]},
            "The parameter 'covariances' should be symmetric, positive-definite",
        ),
        (
            lambda gm: {"precisions_cholesky": gm.precisions_cholesky_ * 2},
            "The parameter 'precisions_cholesky' does not match the covariances",
        ),
        (
            lambda gm: {"means": gm.means_[:1]},
            r"The parameter 'means' should have the shape of \(2, 2\), but got \(1, 2\)",
        ),
    ],
    ids=["non-finite", "weights", "not-spd", "factor-mismatch", "shape"],
)
def test_invalid_parameters(tmp_path, fitted, change, message):
    fitted.save(tmp_path / "m.npz")
    rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", **change(fitted))
    with pytest.raises(ModelFileError, match=r"bad\.npz: " + message):
        jaxgmm.load(tmp_path / "bad.npz")


def test_model_whose_dimension_does_not_match_the_data(tmp_path, fitted):
    fitted.save(tmp_path / "m.npz")
    loaded = jaxgmm.load(tmp_path / "m.npz")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="expecting 2 features"):
        loaded.predict(np.ones((3, 5)))
