"""Replacing a catalog folder atomically for its readers, and cleaning up after killed writers.

A catalog path is a symbolic link to a versioned sibling folder ``.NAME.v-PID-NS``. A write
builds the new folder beside it (``.NAME.tmp-PID-NS``), renames it to a version and replaces
the link with ``os.replace`` (renaming a link over a link is atomic), so whoever opens the path
finds the old catalog or the new one, never no folder and never half of one. Readers resolve
the link once (``resolve_version``) and read every file of that version; the version before
the current one is kept until the next write, so a reader that is still loading can finish.

A catalog saved as a plain folder (before versions) is exchanged with the new link in one step
by Linux's ``renameat2(RENAME_EXCHANGE)``; where that call is missing the old folder is moved
aside first (only for this first write). Temporaries of a writer that was killed are deleted by
the next write to the same catalog once their process is gone.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _stamp() -> str:
    return f"{os.getpid()}-{time.monotonic_ns()}"


def temp_folder(out: Path) -> Path:
    """A fresh sibling folder name for a write to ``out``."""
    return out.parent / f".{out.name}.tmp-{_stamp()}"


def resolve_version(path: Path) -> Path:
    """The folder a catalog path stands for now (itself when it is a plain folder)."""
    return path.resolve() if path.is_symlink() else path


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    rename = getattr(libc, "renameat2", None)
    if rename is None:
        return False
    rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rename.restype = ctypes.c_int
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish(tmp: Path, out: Path) -> None:
    """Make the finished folder ``tmp`` the catalog at ``out`` in one atomic step."""
    version = out.parent / f".{out.name}.v-{_stamp()}"
    os.replace(tmp, version)
    previous = os.readlink(out) if out.is_symlink() else None
    link = out.parent / f".{out.name}.link-{_stamp()}"
    os.symlink(version.name, link)
    try:
        if out.is_symlink() or not out.exists():
            os.replace(link, out)
        else:  # a plain folder from before versions (the caller checked it is a catalog)
            legacy = out.parent / f".{out.name}.v-0-{time.monotonic_ns()}"
            if exchange(link, out):
                os.replace(link, legacy)  # the old folder now lies where the link was
            else:
                os.replace(out, legacy)
                os.replace(link, out)
            previous = legacy.name
    except BaseException:
        if link.is_symlink():
            link.unlink()
        raise
    prune(out, keep={version.name, previous} - {None})


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune(out: Path, keep: set[str] | None = None) -> int:
    """Delete what writers to ``out`` left behind: temporaries of processes that are gone and,
    when ``keep`` is given, versions other than those (the current and the previous one).
    Returns how many were deleted."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|link|old|v)-(\d+)-\d+$")
    current = os.readlink(out) if out.is_symlink() else None
    removed = 0
    for entry in out.parent.iterdir() if out.parent.is_dir() else ():
        match = pattern.match(entry.name)
        if not match or entry.name == current:
            continue
        kind, pid = match.group(1), int(match.group(2))
        mine = pid == os.getpid()
        if kind == "v":
            stale = keep is not None and entry.name not in keep and (mine or not _pid_alive(pid))
        else:  # a temporary: in use while its writer runs
            stale = not mine and not _pid_alive(pid)
        if not stale:
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    if removed:
        log.info("removed %d leftover folder(s) of catalog %s", removed, out)
    return removed
