"""jaxgmm's compiled programs: kept in memory (a bounded number) and on disk across processes.

A fit runs a few jitted programs (start, chunks of iterations, finish), and each new shape of
the data or the model is a new compilation: seconds on a CPU for a fit that then runs in
milliseconds. Shape buckets (``jaxgmm._shapes``) make new shapes rarer; this module makes the
rest cheaper:

* **memory**: at most ``max_programs()`` executables are kept (least recently used first out),
  so a long process that meets many shapes (a grid search, a notebook) holds bounded memory.
  Each executable holds its machine code in memory mappings of its own (about 100 per program
  on a CPU, and Linux allows 65,530 per process), so an unbounded cache ends in a crash.
* **disk**: executables are serialized (``jax.experimental.serialize_executable``) into the
  cache folder, by default ``~/.cache/jaxgmm/programs`` (``$XDG_CACHE_HOME`` honoured;
  ``JAXGMM_CACHE_DIR`` moves it, and an empty value turns it off), keyed by the program, its
  static arguments and argument shapes, and the versions of jaxgmm's source, JAX and jaxlib,
  the device and the CPU. Loading one takes a few milliseconds where tracing, lowering and
  compiling it took a second; JAX's own persistent cache would still trace and lower. The
  folder is kept under ``MAX_DISK_BYTES`` (oldest files out) and used only when it belongs to
  this user and no one else can write to it, since loading an executable runs its code.
* **compiled ahead**: a fit's later programs (its iterations, its finish) are lowered while
  its start compiles, and each compiles in a background thread (:meth:`Program.compile_ahead`).
* **ahead**: beside each program file, a small ``.next`` file names the programs that followed
  it last time (a fit's start is followed by its iterations and its finish, a grid's programs
  by the next model's). When a program is loaded or compiled, those are loaded from disk in a
  background thread while it runs, so that a new process does not wait for each in turn.
Inside a JAX transformation (``fit`` under ``jit`` or ``vmap``) a program is the plain jitted
function, traced into the caller's program.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import platform
import stat
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np

from ._files import atomic_write_bytes

DEFAULT_MAX_PROGRAMS = 48
MAX_DISK_BYTES = 1 << 30
_SUFFIX = ".jaxgmm-program"
_NEXT = ".next"
SUCCESSORS = 4  # programs named in a .next file

_lock = threading.Lock()
_memory: OrderedDict = OrderedDict()  # signature -> (executable, its disk path or None)
_ahead: dict[Path, Future] = {}  # disk path -> its executable, being loaded
_last: list[Path | None] = [None]  # the disk path of the program needed last
_compiling: dict = {}  # signature -> its executable, being compiled ahead
_obtaining: dict = {}  # signature -> its executable, being loaded or compiled by a call
MAX_COMPILING = 8


def max_programs() -> int:
    """Executables kept in memory: ``JAXGMM_MAX_PROGRAMS``, 48 by default."""
    try:
        return max(int(os.environ.get("JAXGMM_MAX_PROGRAMS", DEFAULT_MAX_PROGRAMS)), 1)
    except ValueError:
        return DEFAULT_MAX_PROGRAMS


def cache_dir() -> Path | None:
    """The disk cache folder, or None when it is turned off or cannot be used safely."""
    setting = os.environ.get("JAXGMM_CACHE_DIR")
    if setting == "":
        return None
    if setting is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        setting = str(base / "jaxgmm" / "programs")
    return _usable(Path(setting))


@functools.cache
def _usable(path: Path) -> Path | None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = path.stat()
    except OSError:
        return None
    foreign = hasattr(os, "getuid") and info.st_uid != os.getuid()
    if foreign or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # loading an executable runs its code: only from a folder that is ours
    return path


@functools.cache
def _environment() -> str:
    """What a compiled program depends on besides its own signature."""
    import jaxlib

    sources = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        sources.update(path.read_bytes())
    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:  # the instruction sets XLA compiled for
        with open("/proc/cpuinfo") as info:
            cpu = next((line for line in info if line.startswith("flags")), cpu)
    except OSError:
        pass
    return repr(
        (
            sources.hexdigest(),
            jax.__version__,
            jaxlib.__version__,
            device.platform,
            device.device_kind,
            cpu,
            os.environ.get("XLA_FLAGS", ""),
        )
    )


def _leaf_key(leaf):
    if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return None  # sharded over several devices: left to jax.jit
        return (leaf.shape, str(leaf.dtype), bool(getattr(leaf, "weak_type", False)))
    if isinstance(leaf, np.ndarray | np.generic):
        return (leaf.shape, str(leaf.dtype), False)
    if isinstance(leaf, bool | int | float | complex):
        return (type(leaf).__name__,)
    return None  # anything else: left to jax.jit


QUICK_OPTIONS = {"xla_backend_optimization_level": 0}
# XLA's CPU backend emits its fusions by default with its newer MLIR emitters; its older LLVM IR
# emitters compile jaxgmm's programs in about half the time, but run large fits' iterations
# anywhere from 22% faster to 35% slower (this 2-core VM, 2026-12-05, bench/README.md's
# workloads: compilation 2.8 -> 1.5 s on small-2d, 5.4 -> 3.4 s on mid-16; per iteration
# mid-16 full 98 -> 77 ms, mid-16 diag 19 -> 25 ms, big-2d 70 -> 85 ms). Small fits, whose
# iterations take microseconds and whose time is compilation, use them, and so do the programs
# a grid runs once (``jaxgmm._fit.run_restarts``). Only the CPU backend
# reads the option (others ignore it); with a jaxlib that does not know it, programs compile
# with that jaxlib's default emitters.
CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_cpu_options_known = [True]


class Program:
    """A function compiled like ``jax.jit(fun, static_argnames=...)``, whose executables this
    module keeps (see the module's docstring).

    A call with ``small=True`` (not passed on to the function) compiles with ``CPU_OPTIONS``,
    for a program of a small fit, whose time is its compilation; ``quick=True`` also turns
    XLA's backend optimisation off: about a third less compilation for code that runs twice as
    slowly, the right trade for a program that runs once, briefly (the start of a small
    fit)."""

    def __init__(self, fun, static_argnames=()):
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.static_argnames = tuple(static_argnames)
        self.name = f"{fun.__module__}.{fun.__qualname__}"
        functools.update_wrapper(self, fun)

    def lower(self, *args, **kwargs):
        return self.jitted.lower(*args, **kwargs)

    def _signature(self, args, kwargs, options):
        static = tuple((name, kwargs[name]) for name in self.static_argnames if name in kwargs)
        static += (("options", options),)
        dynamic = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        leaves, tree = jax.tree_util.tree_flatten((args, dynamic))
        keys = tuple(_leaf_key(leaf) for leaf in leaves)
        if any(key is None for key in keys):
            return None, dynamic
        config = (bool(jax.config.jax_enable_x64), jax.config.jax_default_matmul_precision)
        return (self.name, static, str(tree), keys, config), dynamic

    def compile_ahead(self, *args, small: bool = False, quick: bool = False, **kwargs):
        """Lower this program for arguments like ``args`` (arrays, or ``jax.ShapeDtypeStruct``
        for those not computed yet) now, and compile it in a background thread, for a later
        call with such arguments to take; returns the ``jax.stages.Lowered`` (its
        ``out_info``: the shapes of what it returns), or None when nothing was to be done (the
        program is in memory or on disk, or cannot be kept). Compiling is most of the time to
        a small fit's first answer, and XLA compiles without Python's lock: one program
        compiles while the next is lowered."""
        options = "quick" if quick else "small" if small else "default"
        signature, _ = self._signature(args, kwargs, options)
        if signature is None or _cached(signature) is not None:
            return None
        with _lock:
            if signature in _compiling:
                return None
        path = _disk_path(signature)
        if path is not None and path.exists():
            return None
        _prepare_loading()  # before lowering: quicker
        lowered = self.lower(*args, **kwargs)
        with _lock:
            while len(_compiling) >= MAX_COMPILING:  # never called: drop the oldest
                _compiling.pop(next(iter(_compiling)))
            _compiling[signature] = _compiler().submit(_compile, lowered, options)
        return lowered

    def __call__(self, *args, small: bool = False, quick: bool = False, **kwargs):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kwargs))):
            return self.jitted(*args, **kwargs)
        options = "quick" if quick else "small" if small else "default"
        signature, dynamic = self._signature(args, kwargs, options)
        if signature is None:
            return self.jitted(*args, **kwargs)
        executable = _cached(signature)
        if executable is None:
            executable = _obtain(signature, self, args, kwargs, options)
        return executable(*args, **dynamic)


def program(static_argnames=()):
    """Decorator: the function as a :class:`Program`."""
    return functools.partial(Program, static_argnames=static_argnames)


def _cached(signature):
    with _lock:
        entry = _memory.get(signature)
        if entry is None:
            return None
        _memory.move_to_end(signature)
        return entry[0]


def _keep(signature, executable, path: Path | None = None) -> None:
    with _lock:
        _memory[signature] = (executable, path)
        _memory.move_to_end(signature)
        while len(_memory) > max_programs():
            _memory.popitem(last=False)


def _disk_path(signature) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(repr((_environment(), signature)).encode()).hexdigest()
    return folder / f"{digest[:40]}{_SUFFIX}"


@functools.cache
def _prepare_loading() -> None:
    """What lowering would have done before running: jaxlib binds its LAPACK kernels only when
    a factorisation is first lowered, and an executable loaded from disk that calls one
    before that would jump to an unset address."""
    try:
        from jaxlib import lapack

        _with_scipy_lapack_modules(lambda: lapack.prepare_lapack_call("potrf_ffi", np.float32))
    except (ImportError, AttributeError):  # another jaxlib: what lowering a Cholesky does
        jax.jit(jax.numpy.linalg.cholesky).lower(jax.ShapeDtypeStruct((2, 2), np.float32))


_SCIPY_LAPACK_MODULES = ("scipy.linalg.cython_blas", "scipy.linalg.cython_lapack")


def _with_scipy_lapack_modules(bind) -> None:
    """``bind()``, jaxlib's binding of SciPy's LAPACK (once per process), which imports the two
    small compiled modules that hold its function pointers. By name, they import all of
    ``scipy.linalg`` first: 130-230 ms of a warm selection's 0.6 s (faithful, 14 models; 2-core
    VM, 2026-12-07). So they are loaded from their files (25 ms), in ``sys.modules`` only
    while bound: a later ``import scipy.linalg`` finds the same modules (a module compiled by
    Cython is made once per process). Anything unexpected (another SciPy's layout): the
    import by name."""
    import importlib.machinery
    import importlib.util
    import sys

    if "scipy.linalg" in sys.modules or any(n in sys.modules for n in _SCIPY_LAPACK_MODULES):
        return bind()
    modules = {}
    try:
        import scipy

        folder = [str(Path(scipy.__file__).parent / "linalg")]
        for name in _SCIPY_LAPACK_MODULES:
            found = importlib.machinery.PathFinder.find_spec(name.rpartition(".")[2], folder)
            spec = importlib.util.spec_from_file_location(name, found.origin)
            modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[name])
    except Exception:  # bind() imports them by name
        modules = {}
    sys.modules.update(modules)  # complete modules only, for any other thread
    try:
        bind()
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def _load(path: Path):
    from jax.experimental import serialize_executable

    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        # Kept programs run on one device, the default one, as when compiled in this process;
        # JAX would load an executable onto every device of the process otherwise.
        executable = serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=jax.devices()[:1]
        )
    except Exception:  # a partial, stale or foreign file: compile instead (and overwrite it)
        return None
    os.utime(path)  # recently used: the last to go when the folder is trimmed
    return executable


def _store(path: Path, compiled) -> None:
    from jax.experimental import serialize_executable

    try:
        blob = pickle.dumps(serialize_executable.serialize(compiled))
        atomic_write_bytes(path, blob)
    except Exception:  # not serializable here, or no room: the disk cache is only a cache
        return
    _trim(path.parent)


def _trim(folder: Path) -> None:
    try:
        files = [(p.stat(), p) for p in folder.glob(f"*{_SUFFIX}")]
    except OSError:
        return
    total = sum(info.st_size for info, _ in files)
    for info, path in sorted(files, key=lambda item: item[0].st_mtime):
        if total <= MAX_DISK_BYTES:
            break
        try:
            path.unlink()
            path.with_suffix(_NEXT).unlink(missing_ok=True)
        except OSError:
            continue
        total -= info.st_size


# -- loading ahead ------------------------------------------------------------------------


@functools.cache
def _loader() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxgmm-load")


@functools.cache
def _compiler() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="jaxgmm-compile")


def _successors(path: Path) -> list[str]:
    try:
        return path.with_suffix(_NEXT).read_text().split()
    except (OSError, UnicodeDecodeError):
        return []


def _follow(path: Path) -> None:
    """``path``'s program is the one needed now: name it in the ``.next`` file of the one
    needed before it, and start loading those that followed it last time (unless they are in
    memory or on their way)."""
    with _lock:
        previous, _last[0] = _last[0], path
        held = {entry[1] for entry in _memory.values()} | set(_ahead)
    if previous is not None and previous != path and previous.exists():
        names = _successors(previous)
        if path.name not in names:
            names = [path.name, *names][:SUCCESSORS]
            try:
                atomic_write_bytes(previous.with_suffix(_NEXT), " ".join(names).encode())
            except OSError:  # the cache is only a cache
                pass
    for name in _successors(path):
        ahead = path.with_name(name)
        if ahead in held or name == path.name or not ahead.exists():
            continue
        with _lock:
            if len(_ahead) >= 4 * SUCCESSORS:  # never read: drop the oldest
                _ahead.pop(next(iter(_ahead)))
            _ahead[ahead] = _loader().submit(_load, ahead)


def _take_ahead(path: Path):
    """The executable of ``path`` if it was loaded ahead (waiting for it if still loading),
    else None."""
    with _lock:
        future = _ahead.pop(path, None)
    return None if future is None else future.result()


def _obtain(signature, prog: Program, args, kwargs, options: str):
    """:func:`_load_or_compile`, once for calls of the same program from several threads (the
    bootstrap's shards of replicates): the later calls wait for the first's executable."""
    with _lock:
        future = _obtaining.get(signature)
        first = future is None
        if first:
            future = _obtaining[signature] = Future()
    if not first:
        return future.result()
    try:
        executable = _load_or_compile(signature, prog, args, kwargs, options)
        future.set_result(executable)
        return executable
    except BaseException as error:
        future.set_exception(error)
        raise
    finally:
        with _lock:
            _obtaining.pop(signature, None)


def _load_or_compile(signature, prog: Program, args, kwargs, options: str):
    path = _disk_path(signature)
    executable = None
    _prepare_loading()  # before a loaded program runs, and before lowering: quicker
    if path is not None:
        executable = _take_ahead(path)
        _follow(path)  # its successors load in the background while this one loads or runs
        if executable is None and path.exists():
            executable = _load(path)
    if executable is None:
        with _lock:
            ahead = _compiling.pop(signature, None)
        if ahead is not None:
            executable = ahead.result()
        else:
            executable = _compile(prog.lower(*args, **kwargs), options)
        # JAX's own caches keep what a jitted function lowered and compiled, executables
        # included, for as long as the function lives: let this module's cache be the only one.
        prog.jitted.clear_cache()
        if path is not None:
            _store(path, executable)
    _keep(signature, executable, path)
    return executable


def _compile(lowered, options: str):
    """``lowered`` compiled with the options named "default", "small" or "quick"."""
    base = dict(QUICK_OPTIONS) if options == "quick" else {}
    if options != "default" and _cpu_options_known[0]:
        try:
            return lowered.compile({**base, **CPU_OPTIONS})
        except Exception as error:  # jaxlib's runtime error, whose class has moved over time
            if "compile option" not in str(error):
                raise
            _cpu_options_known[0] = False  # an older or newer jaxlib: its default emitters
    return lowered.compile(base or None)


def clear() -> None:
    """Drop every executable kept in memory (the disk cache stays)."""
    with _lock:
        _memory.clear()
        _ahead.clear()
        _compiling.clear()
        _last[0] = None
