"""The jaxgmm command: each command, and each bad file. The commands run in this process
(``jaxgmm.cli.main``, its output captured), which shares the test run's compiled programs; the
entry point itself, ``python -m jaxgmm``, runs in a subprocess in the tests of the demo and of
a closed pipe (and of Ctrl-C, in test_scale.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxgmm
from jaxgmm import cli
from jaxgmm._cli_io import named as _named

ROOT = Path(__file__).resolve().parents[1]


def run_process(*args, cwd=None):
    """``python -m jaxgmm ARGS`` in a subprocess."""
    env = dict(os.environ)
    env.pop("JAXGMM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "jaxgmm", *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def run(monkeypatch):
    """The command ``jaxgmm ARGS`` in this process: what ``python -m jaxgmm`` does, its exit
    code and output as a subprocess's, and the process's state as it was before."""

    def run(*args, cwd=None):
        out, err = io.StringIO(), io.StringIO()
        logging_level = jax.config.jax_logging_level  # the command quietens JAX's logs
        with monkeypatch.context() as patch, warnings.catch_warnings():
            patch.chdir(cwd or ROOT)
            patch.delenv("JAXGMM_DEBUG", raising=False)
            # Python's default warning filters, as a fresh process has them (not pytest's)
            warnings.resetwarnings()
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning):
                warnings.simplefilter("ignore", category)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main([str(a) for a in args])
                except SystemExit as exit:  # argparse's --help and usage errors
                    code = exit.code
        jax.config.update("jax_logging_level", logging_level)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return run


def assert_bad_input(result, *fragments):
    """Exit code 2, one line on stderr with every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def lesson_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "lesson.csv"
    X = jaxgmm.lesson_data()
    path.write_text("height,width\n" + "\n".join(f"{a:.6f},{b:.6f}" for a, b in X) + "\n")
    return path


# --- the commands -------------------------------------------------------------------------


def test_demo_writes_its_report(tmp_path):
    result = run_process("demo", "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # a learner's first command warns of nothing
    for name in ("responsibilities", "lower_bound", "ellipses", "uncertainty", "exercises"):
        assert (tmp_path / "demo" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "converged" in result.stdout and "BIC" in result.stdout
    out = tmp_path / "demo"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 200 and summary["converged"]
    assert summary["lower_bounds"][-1] > summary["lower_bounds"][0]
    means = sorted(m["x1"] for m in summary["means"])
    assert abs(means[0] + 2) < 0.3 and abs(means[1] - 2) < 0.3
    assert (out / "exercises.csv").read_text().count("\n") == 5
    assert jaxgmm.load(out / "model.npz").n_components == 2


def test_fit_a_csv_with_header(run, tmp_path, lesson_csv):
    out = tmp_path / "fit"
    result = run(
        "fit", lesson_csv, "-k", "2", "--covariance-type", "diag", "--out", out, "--no-plots"
    )
    assert result.returncode == 0, result.stderr
    assert "first row taken as column names: height, width" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["features"] == ["height", "width"]
    assert set(summary["means"][0]) == {"height", "width"}
    labels = (out / "labels.csv").read_text().splitlines()
    assert labels[0] == "label,p0,p1" and len(labels) == 201
    assert list(jaxgmm.load(out / "model.npz").feature_names_in_) == ["height", "width"]


def test_select_then_predict(run, tmp_path, lesson_csv):
    out = tmp_path / "select"
    result = run(
        "select",
        lesson_csv,
        "--k",
        "1..3",
        "--covariance-types",
        "full,spherical",
        "--n-init",
        "2",
        "--out",
        out,
        "--no-plots",
    )
    assert result.returncode == 0, result.stderr
    assert "<- best" in result.stdout
    assert result.stdout.count("top 3 by BIC (lower is better):") == 1
    top = json.loads((out / "summary.json").read_text())["selection"]["top"]
    assert [t["difference"] for t in top] == sorted(t["difference"] for t in top)
    assert top[0]["difference"] == 0 and len(top) == 3
    assert f"{top[0]['covariance_type']}, K={top[0]['n_components']}" in result.stdout
    table = (out / "selection.csv").read_text().splitlines()
    assert table[0].startswith("covariance_type,n_components,log_likelihood")
    assert len(table) == 1 + 6
    # columns in another order are matched by name
    X = jaxgmm.lesson_data()
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("width,height\n" + "\n".join(f"{b},{a}" for a, b in X[:5]) + "\n")
    result = run("predict", out / "model.npz", swapped, "--proba")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("label,p0") and len(lines) == 6
    model = jaxgmm.load(out / "model.npz")
    expected = model.predict(_named(X[:5], ["height", "width"]))
    assert [int(line.split(",")[0]) for line in lines[1:]] == expected.tolist()


def test_fit_without_data_uses_the_lesson_and_npy_works(run, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, jaxgmm.lesson_data().astype(np.float32))
    result = run("fit", path, "--dtype", "float32", "--out", tmp_path / "npy", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "npy" / "summary.json").read_text())["dtype"] == "float32"


def test_bootstrap_commands_write_their_tables_and_plots(run, lesson_csv, tmp_path):
    lrt = run(
        "bootstrap-lrt", lesson_csv, "--covariance-type", "tied", "--max-k", "2",
        "--n-boot", "19", "--out", tmp_path / "lrt",
    )  # fmt: skip
    assert lrt.returncode == 0, lrt.stderr
    assert "1 vs 2" in lrt.stdout and "2 vs 3" in lrt.stdout and "chosen: " in lrt.stdout
    table = (tmp_path / "lrt" / "lrt.csv").read_text().splitlines()
    assert table[0] == "test,statistic,p_value,failed" and len(table) == 3
    replicates = np.loadtxt(tmp_path / "lrt" / "replicates.csv", delimiter=",", skiprows=1)
    assert replicates.shape == (19, 2)
    assert (tmp_path / "lrt" / "lrt.png").stat().st_size > 0
    fit = run("fit", lesson_csv, "-k", "2", "--out", tmp_path / "fit", "--no-plots")
    assert fit.returncode == 0, fit.stderr
    boot = run(
        "bootstrap", tmp_path / "fit" / "model.npz", lesson_csv, "--n-boot", "30",
        "--method", "weighted", "--out", tmp_path / "boot",
    )  # fmt: skip
    assert boot.returncode == 0, boot.stderr
    rows = (tmp_path / "boot" / "standard_errors.csv").read_text().splitlines()
    assert rows[0] == "parameter,index,estimate,se,lo 95%,hi 95%"
    assert len(rows) == 1 + 2 + 4 + 8  # weights (2), means (2 x 2), covariances (2 x 2 x 2)
    for what in ("weights", "means"):
        assert (tmp_path / "boot" / f"bootstrap_{what}.png").stat().st_size > 0
    assert_bad_input(run("bootstrap-lrt", lesson_csv, "--header", "--level", "2"), "level")
    assert_bad_input(
        run("bootstrap", tmp_path / "fit" / "model.npz", lesson_csv, "--method", "jackknife"),
        "jackknife",
    )


def test_help_has_examples(run):
    for command in ("demo", "fit", "select", "predict", "impute", "bootstrap-lrt", "bootstrap"):
        result = run(command, "--help")
        assert result.returncode == 0
        assert "example:" in result.stdout


# --- bad files and settings: one line, exit code 2, no traceback --------------------------


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("empty.csv", "", ["empty.csv", "empty"]),
        ("header_only.csv", "a,b\n", ["header_only.csv", "no data rows"]),
        ("token.csv", "a,b\n1,2\n3,abc\n", ["token.csv:3:2", "'abc'"]),
        ("semicolons.csv", "1;2\n3;4\n5;6\n", ["semicolons.csv", "--delimiter ';'"]),
        ("ragged.csv", "1,2\n3,4,5\n6,7\n", ["ragged.csv:2", "expected 2", "3"]),
        ("missing.csv", "a,b\n1,2\nNA,4\n", ["missing.csv:3:1", "missing value"]),
    ],
    ids=["empty", "header-only", "non-numeric", "wrong-delimiter", "ragged", "NA"],
)
def test_bad_data_files(run, tmp_path, name, content, fragments):
    path = write(tmp_path, name, content)
    assert_bad_input(run("fit", path, "--out", tmp_path / "out", "--no-plots"), *fragments)


def test_missing_file_and_directory(run, tmp_path):
    assert_bad_input(run("fit", tmp_path / "nope.csv", "--out", tmp_path / "o"), "nope.csv")
    assert_bad_input(run("fit", tmp_path, "--out", tmp_path / "o"), "directory")


def test_unwritable_output_fails_before_fitting(run, tmp_path, lesson_csv):
    blocker = write(tmp_path, "file.txt", "not a folder")
    result = run("fit", lesson_csv, "--out", blocker / "sub")
    assert_bad_input(result, "file.txt")
    assert "Fitting" not in result.stdout


def test_bad_settings(run, tmp_path):
    assert_bad_input(run("fit", "-k", "0"), "must be at least 1")
    assert_bad_input(run("select", "--k", "3..x"), "not a list of K")
    assert_bad_input(run("fit", "--covariance-type", "round"), "invalid choice")
    result = run("fit", "-k", "500", "--out", tmp_path / "o", "--no-plots")
    assert_bad_input(result, "n_components=500", "N=200")


def test_bad_model_files(run, tmp_path, lesson_csv):
    junk = write(tmp_path, "junk.npz", b"\x00\x01 not a zip")
    assert_bad_input(run("predict", junk, lesson_csv), "junk.npz", "not a readable jaxgmm model")
    out = tmp_path / "m"
    assert run("fit", "--out", out, "--no-plots", "--n-init", "1").returncode == 0
    three = write(tmp_path, "three.csv", "1,2,3\n4,5,6\n")
    assert_bad_input(
        run("predict", out / "model.npz", three, "--no-header"),
        "expects 2 features",
        "three.csv has 3 columns",
    )
    renamed = write(tmp_path, "renamed.csv", "p,q\n1,2\n")
    assert_bad_input(run("predict", out / "model.npz", renamed), "no columns x1, x2")


# --- a new user's stumbles -------------------------------------------------------------------


def test_a_reader_that_goes_away_loses_nothing(tmp_path):
    """`jaxgmm fit ... | head -1`: the files are written first, and the closed pipe ends the
    command quietly, as Unix tools end (exit 141 = 128 + SIGPIPE)."""
    out = tmp_path / "piped"
    command = [sys.executable, "-m", "jaxgmm", "fit", "--out", str(out), "--no-plots"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stdout.readline()  # printed before the fit: the rest comes after it
    proc.stdout.close()  # what head does once it has its lines
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err
    assert first.startswith("Fitting")
    assert "Traceback" not in err and "error" not in err, err
    assert {p.name for p in out.iterdir()} == {"model.npz", "summary.json", "labels.csv"}


def test_no_plots_removes_the_figures_of_an_earlier_run(run, tmp_path, lesson_csv):
    out = tmp_path / "again"
    assert run("fit", lesson_csv, "--out", out, "--n-init", "1").returncode == 0
    assert (out / "ellipses.png").exists()
    assert run("fit", lesson_csv, "--out", out, "--n-init", "1", "--no-plots").returncode == 0
    assert not list(out.glob("*.png"))


def test_a_refused_run_leaves_no_empty_folder(run, tmp_path):
    bad = write(tmp_path, "bad.csv", "a,b\n1,x\n2,3\n")
    out = tmp_path / "never"
    assert_bad_input(run("fit", bad, "--out", out), "bad.csv")
    assert not out.exists()


def test_messages_that_say_what_happened(run, tmp_path, lesson_csv):
    assert_bad_input(run("select", "--k", "3..1"), "3..1", "empty range", "1..3")
    text = write(tmp_path, "model.txt", "a saved model? no\n")
    assert_bad_input(run("predict", text, lesson_csv), "model.txt", "it is text")
    huge = tmp_path / "huge.csv"
    np.savetxt(huge, np.random.default_rng(0).normal(size=(50, 2)) * 1e300, delimiter=",")
    assert_bad_input(run("fit", huge, "--out", tmp_path / "h"), "overflow", "rescale")
    one = write(tmp_path, "one.csv", "1,2\n")
    assert_bad_input(run("fit", one, "--out", tmp_path / "o"), "one.csv", "1 row")


def test_predict_matches_names_quietly_and_checks_its_output_first(run, tmp_path, lesson_csv):
    out = tmp_path / "model"
    assert run("fit", lesson_csv, "--out", out, "--no-plots", "--n-init", "1").returncode == 0
    wider = tmp_path / "wider.csv"
    X = jaxgmm.lesson_data()[:4]
    wider.write_text("id,width,height\n" + "\n".join(f"{i},{b},{a}" for i, (a, b) in enumerate(X)))
    result = run("predict", out / "model.npz", wider)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    assert len(result.stdout.splitlines()) == 5
    blocked = write(tmp_path, "file", "x")
    assert_bad_input(
        run("predict", out / "model.npz", wider, "--out", blocked / "labels.csv"), "file"
    )


def test_summary_says_how_the_demo_started(run, tmp_path):
    assert run("demo", "--out", tmp_path / "d", "--no-plots").returncode == 0
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["initialization"].startswith("given (weights_init, means_init")


def test_prior_of_a_model_without_one_is_refused(run, lesson_csv, tmp_path):
    result = run(
        "fit",
        lesson_csv,
        "--header",
        "--n-components",
        "2",
        "--covariance-type",
        "VEE",
        "--prior",
        "default",
        "--out",
        tmp_path / "out",
    )
    assert_bad_input(result, "VEE", "no prior")


def test_noise_labels_minus_one_then_predict_and_stream_refuses(run, tmp_path):
    """--noise: labels.csv has the noise column last and labels -1; predict reads the model
    back; --stream says it cannot yet."""
    data = ROOT / "tests" / "data" / "mclust" / "faithful_noise_data.csv"
    result = run("fit", data, "-k", "2", "--noise", "--no-plots", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "noise" in result.stdout
    lines = (tmp_path / "out" / "labels.csv").read_text().splitlines()
    assert lines[0] == "label,p0,p1,p_noise"
    labels = np.array([int(line.split(",")[0]) for line in lines[1:]])
    assert set(labels) == {-1, 0, 1} and np.mean(labels[272:] == -1) > 0.6
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert 0 < summary["noise"]["weight"] < 0.5
    predicted = run("predict", tmp_path / "out" / "model.npz", data)
    assert predicted.returncode == 0, predicted.stderr
    assert [int(v) for v in predicted.stdout.split()[1:]] == labels.tolist()
    np.save(tmp_path / "x.npy", np.loadtxt(data, delimiter=",", skiprows=1))
    result = run("fit", tmp_path / "x.npy", "--stream", "--noise", "--out", tmp_path / "s")
    assert_bad_input(result, "--noise", "--stream")


def test_missing_values_fit_impute_and_the_refusal_names_the_option(run, tmp_path):
    """A CSV with NA, empty fields and NaN: refused by default with the option named, fitted
    with --missing em (the plots draw the incomplete rows at their imputed means), then
    filled by impute, observed values untouched."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 4])
    text = []
    for i, row in enumerate(X):
        fields = [f"{v:.6f}" for v in row]
        if i % 7 == 0:
            fields[i % 3] = ("NA", "", "NaN")[i % 3]
        text.append(",".join(fields))
    data = write(tmp_path, "holes.csv", "a,b,c\n" + "\n".join(text) + "\n")
    assert_bad_input(run("fit", data, "--out", tmp_path / "no"), "missing value", "--missing em")
    out = tmp_path / "out"
    result = run("fit", data, "--missing", "em", "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "ellipses.png").exists()
    filled = run("impute", out / "model.npz", data, "--out", tmp_path / "filled.csv")
    assert filled.returncode == 0, filled.stderr
    values = np.loadtxt(tmp_path / "filled.csv", delimiter=",", skiprows=1)
    assert values.shape == X.shape and np.isfinite(values).all()
    np.testing.assert_allclose(values[1:7], X[1:7], atol=1e-6)  # complete rows, as written
    holes = [i for i in range(len(X)) if i % 7 == 0]
    assert np.abs(values[holes] - X[holes]).max() < 5  # filled near the truth, not with junk
    draws = run("impute", out / "model.npz", data, "--draws", "3")
    assert draws.returncode == 0, draws.stderr
    assert draws.stdout.splitlines()[0] == "draw,a,b,c" and len(draws.stdout.splitlines()) == 361
    holes = np.genfromtxt(data, delimiter=",", skip_header=1)  # empty fields, NA: NaN
    np.save(tmp_path / "holes.npy", holes)
    streamed = run(
        "fit",
        tmp_path / "holes.npy",
        "--stream",
        "--missing",
        "em",
        "--prior",
        "default",
        "--out",
        tmp_path / "streamed",
    )
    assert streamed.returncode == 0, streamed.stderr
    assert (tmp_path / "streamed" / "labels.csv").read_text().count("\n") == 121
