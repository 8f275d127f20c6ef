"""Sphinx configuration of jaxgmm's manual.

The API reference and the command line's reference are written here, at every build, from
``jaxgmm.__all__``, ``jaxgmm.plot.__all__`` and the command's parser, so that they cannot drift
from the code. Build: the command after ``<!-- docs-command -->`` in README.md.
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path

# The gallery's example of several devices needs them before JAX starts: 4 CPU devices for the
# whole build (each example runs in this process).
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"]
).strip()
os.environ["COLUMNS"] = "80"  # argparse's help wraps to this width: the page's code blocks

import jaxgmm  # noqa: E402
import jaxgmm.datasets  # noqa: E402
import jaxgmm.plot  # noqa: E402
from jaxgmm.cli import build_parser  # noqa: E402

HERE = Path(__file__).resolve().parent

project = "jaxgmm"
author = "the jaxgmm developers"
copyright = "2026, the jaxgmm developers"
release = version = jaxgmm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.txt", "auto_examples/*.ipynb", "**.py.md5"]
html_theme = "pydata_sphinx_theme"
html_title = f"jaxgmm {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
myst_heading_anchors = 3
autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc sections say the types
# a class's page documents its public methods (a NamedTuple's fields are its Attributes)
autodoc_default_options = {"members": True, "exclude-members": "count, index"}
templates_path = ["_templates"]  # a class's page: its docstring and its methods, no tables


def _skip_tuple_fields(app, what, name, obj, skip, options):
    # a NamedTuple's fields are "Alias for field number i": its Attributes section says more;
    # a method a subclass removes (BayesianGaussianMixture's bic, ...) is a property of no doc
    doc = getattr(obj, "__doc__", None) or ""
    removed = isinstance(obj, property) and not doc
    return True if doc.startswith("Alias for field") or removed else None


def setup(app):
    app.connect("autodoc-skip-member", _skip_tuple_fields)


numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# A documented parameter the signature lacks (one renamed in the code) fails the build;
# tests/test_docstrings.py also checks the reverse for every public function.
numpydoc_validation_checks = {"PR02"}
numpydoc_validation_exclude = {r"\.__init__$", r"^jaxgmm\.(NotFittedError|ConvergenceWarning)"}
# The build needs no network: no intersphinx inventories.
suppress_warnings = ["config.cache"]  # sphinx-gallery's configuration holds the scraper


# ---- the API reference, one page per public name -------------------------------------------

API_SECTIONS = {
    "The estimator": [
        "GaussianMixture",
        "load",
        "ModelFileError",
        "NotFittedError",
        "ConvergenceWarning",
    ],
    "Variational Bayes": ["BayesianGaussianMixture"],
    "Model selection": ["select", "SelectionResult", "n_parameters"],
    "Bootstrap inference": ["bootstrap", "bootstrap_lrt", "BootstrapResult", "BootstrapLRTResult"],
    "The functional core": [
        "fit",
        "initialize",
        "e_step",
        "m_step",
        "em_step",
        "log_prob",
        "component_log_prob",
        "kmeans_plusplus",
        "best_restart",
        "params_from_covariances",
        "params_from_precisions",
    ],
    "Parameters and results": ["GMMParams", "FitResult", "RestartOutcome", "Progress"],
    "Priors": ["Prior", "default_prior"],
    "Large data": ["fit_stream"],
    "Data": ["lesson_data"],
    "Constants": ["COVARIANCE_TYPES", "INIT_METHODS", "DEGENERATE_RTOL"],
}
DATASETS = ["faithful", "iris"]


def _autosummary(module: str, names: list[str]) -> str:
    entries = "\n".join(f"   {name}" for name in names)
    return (
        f".. currentmodule:: {module}\n\n.. autosummary::\n   :toctree: generated/\n\n{entries}\n"
    )


def write_api_page() -> None:
    listed = [name for names in API_SECTIONS.values() for name in names]
    missing = sorted(set(jaxgmm.__all__) - set(listed))
    extra = sorted(set(listed) - set(jaxgmm.__all__))
    if missing or extra or len(listed) != len(set(listed)):
        raise RuntimeError(
            f"docs/conf.py's API_SECTIONS must list jaxgmm.__all__ once each: "
            f"missing {missing}, not public {extra}"
        )
    parts = [
        "API reference\n=============\n\n"
        "Every public name of :mod:`jaxgmm` and :mod:`jaxgmm.plot`, from its docstring.\n"
    ]
    for title, names in API_SECTIONS.items():
        parts.append(f"{title}\n{'-' * len(title)}\n\n{_autosummary('jaxgmm', names)}")
        if title == "Data":
            parts.append(_autosummary("jaxgmm.datasets", DATASETS))
    parts.append(
        "Plots (``jaxgmm.plot``)\n-----------------------\n\n"
        ".. automodule:: jaxgmm.plot\n   :no-members:\n\n"
        + _autosummary("jaxgmm.plot", list(jaxgmm.plot.__all__))
    )
    _write_if_changed(HERE / "api.rst", "\n".join(parts))


# ---- the command line's reference, from its parser ------------------------------------------


def write_cli_page() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    parts = [
        "Command line\n============\n\n"
        "The ``jaxgmm`` command's help, as ``jaxgmm COMMAND --help`` prints it "
        "(written from its parser at every build). Bad input ends with one line naming the "
        "problem and exit code 2; see :doc:`guide/command-line`.\n",
        _help_block("jaxgmm", parser.format_help()),
    ]
    for name, sub in commands.choices.items():
        parts.append(_help_block(f"jaxgmm {name}", sub.format_help()))
    _write_if_changed(HERE / "cli.rst", "\n".join(parts))


def _help_block(title: str, text: str) -> str:
    body = "\n".join(f"   {line}".rstrip() for line in text.splitlines())
    return f"``{title}``\n{'-' * (len(title) + 4)}\n\n.. code-block:: text\n\n{body}\n"


def _write_if_changed(path: Path, text: str) -> None:
    # rewriting an unchanged page would make Sphinx rebuild it and everything that links to it
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


write_api_page()
write_cli_page()


# ---- the gallery ----------------------------------------------------------------------------

_scraped = weakref.WeakSet()


def figure_scraper(block, block_vars, gallery_conf):
    """jaxgmm's plots are Figures built without pyplot, which sphinx-gallery's matplotlib
    scraper cannot see: take every Figure that a block left in the example's variables."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    paths = []
    for value in list(block_vars["example_globals"].values()):
        figures = value if isinstance(value, (list, tuple)) else [value]
        for fig in figures:
            if isinstance(fig, Figure) and fig not in _scraped:
                _scraped.add(fig)
                path = next(block_vars["image_path_iterator"])
                fig.savefig(path, dpi=110)
                paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep) + "plot_",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": (figure_scraper,),
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "capture_repr": (),  # printed output only, not the repr of a block's last expression
    "reference_url": {"jaxgmm": None},
}
