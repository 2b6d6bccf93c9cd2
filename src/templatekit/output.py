"""Writing a result where the user asked: atomically for files, through for devices and pipes.

:func:`write_output` is the one way templatekit writes a file:

* ``-``: standard output;
* an existing non-regular file (a character device such as ``/dev/null``, a FIFO, a
  socket, ``/dev/stdout``): written through, in place; never replaced or removed;
* a symbolic link: followed on purpose: its final target is written atomically and the
  link stays a link;
* a regular file or a new path: written to a temporary file in the same folder, then renamed
  over the target, so the target is replaced whole or left untouched.  The temporary file is
  removed on every exit path (errors, ``KeyboardInterrupt``, ``SystemExit``, SIGTERM).

:func:`temporary_beside` is that temporary file, for writers of other formats (GGUF copies).
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

__all__ = ["STDOUT", "current_umask", "is_special_file", "real_target", "temporary_beside", "write_all", "write_output"]

STDOUT = "-"


def write_output(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8, byte for byte (no newline translation), to ``path``.

    Raises :class:`~templatekit.errors.OutputError` with a one-line reason.
    """
    data = text.encode("utf-8")
    if str(path) == STDOUT:
        _write_through_stream(data)
        return
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {path}: it is a folder")
    if mode is not None and not stat.S_ISREG(mode):
        _write_through_file(path, data)  # by the given name: /dev/stdout may lead to a pipe
        return
    _replace_atomically(path, real_target(path), data, mode)


def real_target(path: str | Path) -> Path:
    """Where writing ``path`` goes: a symlink (chain) is followed to its final target, which is
    replaced while the link stays a link."""
    return Path(os.path.realpath(path))


def is_special_file(path: str | Path) -> bool:
    """Whether ``path`` is ``-`` or an existing file that is not a regular file (device, FIFO...)."""
    if str(path) == STDOUT:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _write_through_stream(data: bytes) -> None:
    stream = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    try:
        if stream is None:
            sys.stdout.write(data.decode("utf-8"))
        else:
            stream.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write to stdout: {error.strerror or error}") from None


def _write_through_file(path: str | Path, data: bytes) -> None:
    """A device, FIFO or socket: open it for writing (never create, truncate or replace it)."""
    shown = path
    try:
        descriptor = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise OutputError(f"cannot write {shown}: {error.strerror or error}") from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
    except OSError as error:
        raise OutputError(f"cannot write {shown}: {error.strerror or error}") from None
    finally:
        os.close(descriptor)


def _replace_atomically(shown: str | Path, target: Path, data: bytes, mode: int | None) -> None:
    with temporary_beside(target) as (handle, temporary):
        try:
            write_all(handle, data)
            os.chmod(temporary, stat.S_IMODE(mode) if mode is not None else 0o666 & ~current_umask())
            os.replace(temporary, target)
        except OSError as error:
            raise OutputError(f"cannot write {shown}: {error.strerror or error}") from None


def write_all(handle: BinaryIO, data: memoryview | bytes) -> None:
    """Write all of ``data`` to an unbuffered ``handle`` (which may write less per call)."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view) :]


@contextmanager
def temporary_beside(target: Path) -> Iterator[tuple[BinaryIO, str]]:
    """An unbuffered temporary file in ``target``'s folder, removed unless renamed: on errors,
    ``KeyboardInterrupt``, ``SystemExit`` and SIGTERM (``SystemExit(143)`` within the block, in
    the main thread). Interrupts are held back until the cleanup is armed."""
    folder = target.parent if str(target.parent) else Path(".")
    with _sigterm_exits():
        unblock = _block_interrupts()
        try:
            descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        except OSError as error:
            unblock()
            raise OutputError(f"cannot write {target}: {error.strerror or error}") from None
        try:
            unblock()
            with os.fdopen(descriptor, "wb", buffering=0) as handle:
                yield handle, temporary
        except OSError as error:
            raise OutputError(f"cannot write {target}: {error.strerror or error}") from None
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` so that cleanups run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _block_interrupts() -> Callable[[], None]:
    """Hold SIGINT and SIGTERM back (where the OS allows it); the returned function lets them through."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def unblock() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return unblock


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
