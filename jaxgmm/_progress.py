"""A one-line progress bar on stderr, fed by the ``callback`` of :func:`jaxgmm.fit`.

No dependency: a carriage return redraws the line after each compiled chunk of iterations.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ._host_loop import Progress


class ProgressBar:
    """Callable that draws ``label [#####.....] 40/100 iterations ...`` and, when closed, ends
    the line with the elapsed time."""

    def __init__(
        self,
        label: str = "EM",
        stream: TextIO | None = None,
        width: int = 24,
        members: str = "restarts",
    ):
        self.label = label
        self.members = members
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.start = time.perf_counter()
        self.drawn = False
        self.previous = 0

    def __call__(self, progress: Progress) -> None:
        done = min(progress.iteration / max(progress.max_iter, 1), 1.0)
        filled = round(done * self.width)
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{progress.iteration}/{progress.max_iter} iterations, "
            f"{progress.running}/{progress.n_init} {self.members} running"
        )
        if math.isfinite(progress.best_lower_bound):
            line += f", best lower bound {progress.best_lower_bound:.6g}"
        # pad over the remains of a longer previous line
        self.stream.write(line + " " * max(self.previous - len(line), 0))
        self.previous = len(line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write(f" ({time.perf_counter() - self.start:.1f} s)\n")
            self.stream.flush()
