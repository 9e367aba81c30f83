"""Errors a user can meet.

Every exception raised for a user mistake (bad data, bad checkpoint, bad option) is a
``PixelwiseError``. Its message names the file involved and the fix, so the CLI can print it on
one line without a traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


class PixelwiseError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is a complete one-line message."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.fix = fix
        parts = [message]
        if path is not None and str(path) not in message:
            parts.append(f"(file: {path})")
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class DatasetError(PixelwiseError):
    """The dataset description or its files are wrong (missing, unpaired, unreadable)."""


class LabelError(DatasetError):
    """A label map holds values or a shape that the dataset description does not allow."""


class ImageReadError(DatasetError):
    """An image or label file cannot be decoded (corrupt, truncated, not an image)."""


class ImageTooLargeError(ImageReadError):
    """An image declares more pixels than the caller allows (refused before decoding it)."""


class UnreadableImagesError(ImageReadError):
    """Batch prediction skipped files it could not read; the others were predicted.

    ``written`` holds the outputs written, ``skipped`` (path, reason) pairs for the files skipped.
    """

    def __init__(self, message: str, *, written: list, skipped: list, path: str | Path | None = None,
                 fix: str | None = None):
        super().__init__(message, path=path, fix=fix)
        self.written, self.skipped = written, skipped


class ConfigError(PixelwiseError):
    """A run configuration or command-line option is invalid."""


class ModelError(PixelwiseError):
    """Unknown architecture/encoder, or weights that cannot be loaded."""


class CheckpointError(PixelwiseError):
    """A checkpoint is missing, corrupt, or belongs to another model / number of classes."""


class ResumeError(CheckpointError):
    """``--resume`` was asked for but there is nothing (valid) to resume."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line.

    An error raised in a DataLoader worker comes back wrapped, its message holding the worker's
    traceback; the user's message is its last line ("ImageReadError: Cannot decode ...")."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        prefix = f"{type(exc).__name__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last
    return " ".join(text.split())


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The line of a library's exception that says what is wrong, for a one-line message of ours:
    the first non-empty one, skipping OpenVINO's location lines ('Exception from src/...',
    'Check ... failed at ...'); at most ``limit`` characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0][:limit]


def file_system_line(exc: OSError) -> str:
    """An OSError with a file name (permissions, a folder or file in the way, a full disk) as the
    CLI's one line, with the fix that fits its kind."""
    if isinstance(exc, IsADirectoryError):
        fix = "a folder has that name: move it, or write the outputs elsewhere (--out)"
    elif isinstance(exc, (FileExistsError, NotADirectoryError)):
        fix = "a file is where a folder is needed (--out names a folder): move it, or choose another --out"
    else:
        fix = "check that the path exists and is writable (and the disk is not full)"
    return f"{exc.strerror or exc}: {exc.filename}. Fix: {fix}"


def one_line_warnings(show: Callable, tag: str = "") -> Callable:
    """pixelwise's own warnings (a skipped file, a dataset whose class names differ) as one line,
    like its errors (``tag``: the torchrun rank); other libraries' warnings keep ``show``, Python's
    format, which says where they come from."""
    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, UserWarning) and "pixelwise" in Path(filename).parts:
            print(f"pixelwise: warning:{tag} {one_line(message)}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning
