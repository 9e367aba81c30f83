"""One training process per run folder.

``--exist-ok`` (or ``--resume``) while another process trains in the same folder made both write
``last.pt``, ``best.pt`` and ``results.csv`` over each other: the live run's history was lost. An
advisory lock on ``<run>/.lock`` (released by the OS when the process ends, however it ends)
refuses the second one.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from pixelwise.errors import ConfigError


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; the folder is used unguarded
            return self
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"The run folder {self.path.parent} is in use by a training process ({holder}).",
                              path=self.path.parent, fix="let it finish or stop it, or train into another "
                              "folder (--name NEW, or drop --exist-ok)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None
