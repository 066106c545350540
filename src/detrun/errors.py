"""The one exception base for mistakes a user can fix (a name, key, path or file).

The command line prints these as a one-line `error: ...` and exits 2, without a traceback;
anything else is a bug and keeps its traceback. A disk that is full, read-only or not ours to
write is the user's to fix as well: `user_error` turns those OSErrors into a `StorageError`.
"""
from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: the message names the offending thing and what to do.

    Attributes:
        exit_code: the command line's exit status for it (2; a subclass may choose another).
    """

    exit_code = 2


class WorkerError(UserError):
    """A process of a multi-process job stopped on a user mistake: ``"rank N: message"``.

    Args:
        quiet: another process of the job reports the same message, so this one exits
            without printing it (the command line prints each distinct failure once).
    """

    def __init__(self, message: str, *, exit_code: int = 2, quiet: bool = False):
        super().__init__(message)
        self.exit_code, self.quiet = exit_code, quiet


class StorageError(UserError, OSError):
    """A file or folder could not be written (or opened): the disk is full, read-only, or not ours."""


_FREE_SPACE = "free space (or keep fewer checkpoints: trainer.keep_checkpoints=N) or write elsewhere (hydra.run.dir=DIR)"
_ELSEWHERE = "make it writable for this user, or write elsewhere (hydra.run.dir=DIR)"
# errno -> (what happened, what to do)
_STORAGE_PROBLEMS = {
    errno.ENOSPC: ("no space left on the device", _FREE_SPACE),
    errno.EDQUOT: ("the disk quota is exceeded", _FREE_SPACE),
    errno.EROFS: ("the file system is read-only", _ELSEWHERE),
    errno.EACCES: ("permission denied", _ELSEWHERE),
    errno.EPERM: ("operation not permitted", _ELSEWHERE),
}


def storage_error(exc: OSError, path: str | Path | None = None) -> StorageError | None:
    """`exc` as a one-line StorageError naming `path` (default: the file `exc` names) and what
    to do; None when `exc` is another kind of OSError (a bug, or a missing file: said elsewhere)."""
    if exc.errno not in _STORAGE_PROBLEMS:
        return None
    what, todo = _STORAGE_PROBLEMS[exc.errno]
    where = path if path is not None else exc.filename
    problem = StorageError(f"can't write {where}: {what}; {todo}" if where is not None else f"{what}; {todo}")
    problem.errno = exc.errno
    return problem


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Within the block, a full, read-only or forbidden disk raises a StorageError naming `path`.

    For writes through an open file (``torch.save(obj, f)``, ``f.write``), whose OSError names
    no file.
    """
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        problem = storage_error(exc, path)
        if problem is None:
            raise
        raise problem from exc


def user_error(exc: BaseException) -> UserError | None:
    """`exc` as a mistake the user can fix (itself, or a StorageError for a disk problem), or None for a bug."""
    if isinstance(exc, UserError):
        return exc
    return storage_error(exc) if isinstance(exc, OSError) else None
