"""Shared fixtures: JAX's 64-bit mode per test, never at import."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test with JAX's 64-bit mode on, and restore the previous mode afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
