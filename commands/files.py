"""Writing a result to a file named by `--out`: a path that cannot be written is one line
naming it and the reason, never a traceback, and a half-written file never replaces a
good one (written beside it, then renamed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from services.errors import LedgerError


@contextmanager
def written(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`, renamed to `out` when the block succeeds."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        yield partial
        os.replace(partial, out)
    except OSError as exc:
        raise LedgerError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        with suppress(OSError):  # nothing was written (a parent is a file, a read-only disk)
            partial.unlink(missing_ok=True)

