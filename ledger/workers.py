"""A second process for bulk work (checking a feed, folding a replay), forked from this one.

Forked, not spawned: a spawned worker re-imports the caller's main module, which a script
without a `__main__` guard does not survive. A worker leaves through `os._exit`, so the
connections it inherited are never touched there; it opens its own if it needs any.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.process import BaseProcess
from typing import Any


class WorkerDied(RuntimeError):
    """A worker process ended before its work was done: killed, say, or out of memory."""


def second_core() -> bool:
    """Whether a worker process would run beside this one rather than take turns with it."""
    return (os.cpu_count() or 1) > 1 and "fork" in get_all_start_methods()


def forked_pool(*, nice: int = 0) -> ProcessPoolExecutor:
    """One worker process, which dies with this one; `nice` lowers its priority."""
    return ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork"),
                               initializer=_start_worker, initargs=(os.getpid(), nice))


def _start_worker(parent: int, nice: int) -> None:
    _die_with(parent)
    if nice:
        os.nice(nice)


def forked_process(target: Callable[..., None], *args: Any) -> BaseProcess:
    """`target(*args)` started in a forked process, which dies with this one."""
    process = get_context("fork").Process(
        target=_run_dying_with, args=(os.getpid(), target, *args), daemon=True
    )
    process.start()
    return process


def _run_dying_with(parent: int, target: Callable[..., None], *args: Any) -> None:
    _die_with(parent)
    target(*args)


def _die_with(parent: int) -> None:
    """Make the worker die with its parent. A forked worker holds both ends of its task
    queue, so it would otherwise wait forever after its parent was killed with SIGKILL."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(0)


SPOOL_PREFIX = "revledger-spool-"  # then the owner's pid
_SPOOL_OWNER = re.compile(SPOOL_PREFIX + "([0-9]{1,9})-")


class Spool:
    """A worker's large results travel through files in a private directory, and their
    paths alone through the pipe. A message cut off by the worker's death mid-send would
    keep its reader waiting for the rest forever (the parent holds the pipe's write end
    too, so no end of file comes); a path is written whole (a pipe takes 4 KiB at once).

    The directory is made in `within`: the system's temporary directory (`TMPDIR`, as
    Python's `tempfile` reads it) unless given. The spools of processes that are gone are
    swept from there first."""

    def __init__(self, within: str | os.PathLike[str] | None = None) -> None:
        within = os.fspath(within) if within is not None else tempfile.gettempdir()
        _sweep_spools(within)
        self.directory = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=within)

    def put(self, value: Any) -> str:
        """In the worker: `value` kept in a file, whose path is returned."""
        fd, path = tempfile.mkstemp(dir=self.directory)
        with os.fdopen(fd, "wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    def take(self, path: str) -> Any:
        """In the parent: the value at `path`, whose file goes."""
        with open(path, "rb") as file:
            value = pickle.load(file)
        os.unlink(path)
        return value

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _sweep_spools(within: str) -> None:
    """Remove the spools in `within` of processes that are gone: one killed outright
    (SIGKILL, or the out-of-memory killer) had no chance to remove its own."""
    for entry in os.scandir(within):
        if (owner := _SPOOL_OWNER.match(entry.name)) and not _alive(int(owner[1])):
            shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True
