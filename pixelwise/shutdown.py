"""SIGTERM ends a command the way Ctrl-C does: through its ``finally`` blocks.

``kill``, a container's stop and torchrun stopping the other ranks of a failed job send SIGTERM,
whose default action ends the process on the spot: a video's or an export's hidden staging file
was left behind. Inside ``sigterm_unwinds()`` the signal raises ``Stopped`` instead, the command's
cleanup runs, and then the process ends by the same signal, so a parent (a shell, systemd,
torchrun) sees exactly what it sent.

Only a default handler is replaced (a program that embeds pixelwise keeps its own), only in the
process that installed it (forked data-loader workers die by the signal as before), and the
previous handler is put back on the way out. SIGHUP is left alone: ``nohup`` ignores it, and a
terminal hang-up reaches every worker of the process group.
"""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator, NoReturn


class Stopped(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt (not an Exception, so no handler eats it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    owner = os.getpid()

    def stop(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked worker inherited the handler: end as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)

    previous = None
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a user's thread called main()): signals stay as they are
        previous = None
    try:
        yield
    except Stopped as exc:
        previous = None
        os.write(2, f"pixelwise: stopped by {signal.Signals(exc.signum).name}\n".encode())
        end_by(exc.signum)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def end_by(signum: int) -> NoReturn:
    """End the process by ``signum``'s default action, after the cleanup has run: a shell loop
    stops at a Ctrl-C'd pixelwise as it stops at any program, and a parent sees the signal."""
    import sys

    for stream in (sys.stdout, sys.stderr):  # the default action skips Python's own flush at exit
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # delivered before kill returns: the process ends here
    raise SystemExit(128 + signum)  # only if the signal was blocked
