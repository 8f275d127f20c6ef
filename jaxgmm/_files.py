"""Problems with files, and writing output files whole or not at all.

Used by everything that writes (saved models, checkpoints, plots, the command line's reports)
and by the data reader for its errors; it imports nothing of jaxgmm.
"""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import suppress
from pathlib import Path

__all__ = [
    "DataFileError",
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
]


class DataFileError(ValueError):
    """A data file that cannot be used; the one-line message starts with the file's path."""


class OutputError(DataFileError):
    """An output path that cannot be written; the one-line message starts with the path. A
    :class:`DataFileError`, so that one ``except DataFileError`` catches both."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the file is
    renamed over ``path`` (atomic on POSIX and Windows), so a crash or a full disk leaves either
    the old file or the new one, never half of one, and no temporary file behind.

    Raises
    ------
    OutputError
        When the file cannot be written, naming the path.
    """
    shown = str(path)
    path = Path(path)
    try:
        descriptor, temporary = _create_temporary(path)
    except OSError as error:
        raise OutputError(f"{shown}: cannot write the file ({_reason(error)})") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        with suppress(OSError):
            # Overwriting keeps the old file's permissions, as writing in place would.
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    except BaseException as error:
        with suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise OutputError(f"{shown}: cannot write the file ({_reason(error)})") from None
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` whole or not at all; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(path: str | os.PathLike) -> Path:
    """Make sure ``path`` is a directory that can be written to, creating it if missing.

    Meant to run before a long fit, so that a bad output location fails at once.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputError
        Naming the path and why it cannot be created or written.
    """
    shown = str(path)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{shown}: exists and is not a directory") from None
    except OSError as error:
        # os.path's tests, unlike Path's, never raise (on a parent we may not search, say).
        blocker = next((p for p in path.parents if _exists_not_directory(p)), None)
        reason = f"{blocker} is a file" if blocker is not None else _reason(error)
        raise OutputError(f"{shown}: cannot create the directory ({reason})") from None
    # Permission bits, ACLs, read-only mounts: only a real write tells them all apart.
    try:
        descriptor, temporary = _create_temporary(path / ".write-test")
        os.close(descriptor)
        os.unlink(temporary)
    except OSError as error:
        raise OutputError(f"{shown}: cannot write to the directory ({_reason(error)})") from None
    return path


def _exists_not_directory(path: Path) -> bool:
    return os.path.exists(path) and not os.path.isdir(path)


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file next to ``path``, created with the usual permissions (0o666 less the umask),
    which ``tempfile.mkstemp``'s 0o600 would not give."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), str(temporary)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    with suppress(OSError, AttributeError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _reason(error: OSError) -> str:
    return error.strerror.lower() if error.strerror else str(error)
