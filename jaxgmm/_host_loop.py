"""The host loop of a fit: compiled chunks of EM iterations, driven from Python so that between
two chunks the host can stop once every restart is done, report progress, write a checkpoint,
and honour a Ctrl-C (the first one stops after the running chunk, the second aborts).
"""

from __future__ import annotations

import signal
import threading
from typing import NamedTuple

import jax
import numpy as np

CHUNK_ITERATIONS = 10


class Progress(NamedTuple):
    """What a fit's ``callback`` is told after each compiled chunk of iterations."""

    iteration: int  # EM iterations run so far by the longest-running restart
    max_iter: int
    running: int  # restarts neither converged nor failed
    n_init: int
    best_lower_bound: float  # highest lower bound so far among restarts that did not fail


def _running(state, max_iter: int) -> np.ndarray:
    n_iter = np.asarray(state.n_iter)
    return ~(np.asarray(state.converged) | np.asarray(state.failed)) & (n_iter < max_iter)


def progress(state, max_iter: int) -> Progress:
    n_iter = np.asarray(state.n_iter)
    bounds = np.where(np.asarray(state.failed), -np.inf, np.asarray(state.lower_bound))
    return Progress(
        int(n_iter.max()),
        max_iter,
        int(_running(state, max_iter).sum()),
        len(n_iter),
        float(bounds.max()),
    )


class Interruptible:
    """While active, a first Ctrl-C only asks the host loop to stop after the running chunk of
    iterations (``requested``); a second one aborts with ``KeyboardInterrupt``."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)


def iterate(
    state,
    advance,
    traces,
    *,
    max_iter: int,
    chunk_iterations: int = CHUNK_ITERATIONS,
    callback=None,
    checkpoint=None,
    interruptible: bool = True,
):
    """``advance(state, n_steps) -> (state, trace (n_steps, n_init), all_done)`` in chunks until
    every restart is done, ``max_iter`` is reached or a Ctrl-C asks to stop. After each chunk,
    ``checkpoint(state, traces)`` and ``callback(Progress)`` when given. ``traces`` are those
    of the iterations already run (a resumed fit). Returns the state, all traces
    ``(T, n_init)`` and whether the loop was interrupted."""
    chunks = [traces]
    steps = len(traces)
    done = False  # a state with every restart done makes a chunk of skipped iterations
    with Interruptible(interruptible) as interrupt:
        while not done and steps < max_iter and not interrupt.requested:
            state, trace, all_done = advance(state, n_steps=chunk_iterations)
            trace, done = jax.device_get((trace, all_done))  # one wait for the device
            chunks.append(trace)
            steps += chunk_iterations
            if checkpoint is not None:
                checkpoint(state, np.concatenate(chunks))
            if callback is not None:
                callback(progress(state, max_iter))
    interrupted = interrupt.requested and not (done or steps >= max_iter)
    return state, np.concatenate(chunks), interrupted
