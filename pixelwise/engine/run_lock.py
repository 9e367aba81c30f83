"""One training process per run folder.

``--exist-ok`` (or ``--resume``) while another process trains in the same folder made both write
``last.pt``, ``best.pt`` and ``results.csv`` over each other: the live run's history was lost. An
advisory lock on ``<run>/.lock`` (released by the OS when the process ends, however it ends)
refuses the second one.
"""
from __future__ import annotations

import os
import warnings
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
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"The run folder {self.path.parent} is in use by a training process ({holder}).",
                              path=self.path.parent, fix="let it finish or stop it, or train into another "
                              "folder (--name NEW, or drop --exist-ok)") from None
        except OSError as exc:  # a file system without locks (some NFS/FUSE mounts): train unguarded
            fh.close()
            warnings.warn(f"The run folder {self.path.parent} cannot be locked ({exc.strerror or exc}): "
                          "nothing stops a second training process from writing into it.", stacklevel=3)
            return self
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Unlock explicitly: DataLoader workers forked while the run trained share the locked file,
        and closing only this process's copy would leave it locked for as long as they live."""
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
