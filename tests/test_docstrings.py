"""The docstrings as documentation: their examples run and print what they say, and every
public function's Parameters section names exactly its parameters (the manual's API pages are
built from them, so a renamed parameter must not leave a stale description)."""

from __future__ import annotations

import doctest
import inspect
import re

import pytest

import jaxgmm
import jaxgmm.datasets
import jaxgmm.plot

PUBLIC = {
    **{f"jaxgmm.{name}": getattr(jaxgmm, name) for name in jaxgmm.__all__},
    **{f"jaxgmm.plot.{name}": getattr(jaxgmm.plot, name) for name in jaxgmm.plot.__all__},
    **{f"jaxgmm.datasets.{name}": getattr(jaxgmm.datasets, name) for name in ("faithful", "iris")},
}


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name, obj in PUBLIC.items():
        # scikit-learn's exceptions keep scikit-learn's docstrings: theirs to test
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith(
            "jaxgmm"
        ):
            module = inspect.getmodule(inspect.unwrap(obj))
            for test in finder.find(obj, name, module=module):
                if test.examples:
                    found[test.name] = test
    return found


DOCTESTS = _doctests()


def test_the_manual_has_examples_to_run():
    # the public names whose docstrings show an example (a floor, so none silently goes)
    assert {
        "jaxgmm.GaussianMixture",
        "jaxgmm.fit",
        "jaxgmm.select",
        "jaxgmm.em_step",
        "jaxgmm.log_prob",
        "jaxgmm.bootstrap",
        "jaxgmm.bootstrap_lrt",
        "jaxgmm.fit_stream",
        "jaxgmm.datasets.iris",
    } <= set(DOCTESTS)


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    test = DOCTESTS[name]
    test.globs = dict(test.globs)  # each test its own namespace
    output = []
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


def _documented_parameters(doc: str) -> list[str] | None:
    """The names a numpydoc Parameters section describes (None without one)."""
    lines = inspect.cleandoc(doc).split("\n")
    if "Parameters" not in lines:
        return None
    start = lines.index("Parameters") + 2
    names = []
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()):
            break  # the next section
        if line and not line[0].isspace():
            names += [n.strip() for n in line.split(":")[0].split(",") if n.strip()]
    return names


def _callables():
    for name, obj in PUBLIC.items():
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj) and obj.__module__.startswith("jaxgmm"):
            for attribute, member in vars(obj).items():
                if inspect.isfunction(member) and not attribute.startswith("_"):
                    yield f"{name}.{attribute}", member


FUNCTIONS = dict(_callables())
TOP_LEVEL = [name for name, obj in PUBLIC.items() if inspect.isfunction(obj)]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_parameters_sections_name_the_parameters(name):
    function = FUNCTIONS[name]
    actual = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("self", "cls")
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    documented = _documented_parameters(function.__doc__ or "")
    if documented is None:
        # methods in scikit-learn's manner may describe their X in prose
        assert name not in TOP_LEVEL or not actual, f"{name}'s docstring has no Parameters"
        return
    assert sorted(documented) == sorted(actual), (
        f"{name}: documented {sorted(set(documented) - set(actual))} not in the signature, "
        f"{sorted(set(actual) - set(documented))} not documented"
    )
