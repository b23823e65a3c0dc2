"""Reading a repository file without being led out of the repository.

Files are selected by a directory walk that never follows symlinks, then read later (hashing, chunking in
Ray workers). Between the two, a file (or one of its directories) can be replaced by a symlink to
`~/.ssh/id_rsa` or `/etc/shadow`. So every read opens without following a final symlink (`O_NOFOLLOW`),
refuses anything but a regular file (a FIFO would block forever), and checks where the opened descriptor
really lives (`/proc/self/fd`, else `realpath`) against the repository root.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class OutsideRepository(OSError):
    """The path resolves outside the repository (a symlinked file or directory): never read."""


def _real_path_of(fd: int, path: str) -> str:
    proc = f"/proc/self/fd/{fd}"
    try:
        return os.readlink(proc)
    except OSError:
        return os.path.realpath(path)


def read_inside(path: str | os.PathLike, root: str | os.PathLike | None, limit: int | None = None) -> bytes:
    """The bytes of the regular file `path` (at most `limit` bytes), which must resolve inside `root`.

    Raises `OSError` (`OutsideRepository`, `ELOOP` for a symlink, `EINVAL` for a non-regular file) instead of
    following anything; callers count those as unreadable. `root=None` only refuses symlinks and special files.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(os.fspath(path), flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        if root is not None:
            real_root = os.path.realpath(os.fspath(root))
            real = _real_path_of(fd, os.fspath(path))
            if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
                raise OutsideRepository(errno.EXDEV, "resolves outside the repository", os.fspath(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read() if limit is None else fh.read(limit)
    finally:
        os.close(fd)
