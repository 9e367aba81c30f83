"""What every format reader provides: lazy (image, label) items plus the class table.

A reader lists its items without reading pixels (so a 100k-image source is indexed from file
names and annotation files only) and decodes one label at a time on request. Items are small,
picklable records, so checks and conversions can fan them out to worker processes.
"""
from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from pixelwise.data.spec import default_palette


@dataclass(frozen=True)
class Item:
    """One image of a source: where it is, which split, and a format-specific label reference."""

    split: str
    key: str  # output file stem, unique within the split
    image: Path
    ref: Any = None  # label path, annotation ids, ... (whatever ``Reader.label`` needs)


@dataclass
class Reader(ABC):
    """A source dataset in some annotation format, seen as class-id label maps."""

    root: Path
    names: list[str] = field(default_factory=list)
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    ignore_index: int = 255
    format: str = "?"
    #: what a conversion to masks loses or changes, shown to the user and written to SOURCE.md
    notes: list[str] = field(default_factory=list)

    @abstractmethod
    def items(self) -> Iterator[Item]:
        """Every item of every split, from file names / annotation files only (no pixels)."""

    @abstractmethod
    def label(self, item: Item) -> np.ndarray:
        """The HxW class-id map of one item (uint8, or uint16 beyond 255 classes)."""

    def image_size(self, item: Item) -> tuple[int, int] | None:
        """(height, width) when the format records it without decoding the image, else None."""
        return None

    def class_colors(self) -> list[tuple[int, int, int]]:
        return self.colors if len(self.colors) == len(self.names) else default_palette(len(self.names))

    def splits(self) -> list[str]:
        seen: dict[str, None] = {}
        for it in self.items():
            seen.setdefault(it.split, None)
        return list(seen)


def warn(message: str) -> None:
    """Recoverable input problems (clipped coordinates...) are warnings, not silent fixes."""
    warnings.warn(message, UserWarning, stacklevel=3)


def label_dtype(n: int, ignore_index: int) -> type:
    return np.uint8 if max(n - 1, ignore_index) <= 255 else np.uint16


# ---------------------------------------------------------------------------- parallel map
_STATE: dict[str, Any] = {}


def _init(obj: Any) -> None:
    _STATE["obj"] = obj


def _call(args: tuple[Callable, Any]) -> Any:
    fn, x = args
    return fn(_STATE["obj"], x)


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def parallel_map(fn: Callable[[Any, Any], Any], obj: Any, xs: Iterable[Any],
                 workers: int | None = None, chunksize: int = 8) -> Iterator[Any]:
    """``fn(obj, x)`` for each x, in order, on all cores.

    ``obj`` (a reader, a spec) is sent once per worker process, not once per task, and each task
    returns a small summary, so memory stays bounded by one image per worker. ``workers=0`` runs
    in this process (tests, debugging).
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        for x in xs:
            yield fn(obj, x)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(obj,)) as ex:
        yield from ex.map(_call, ((fn, x) for x in xs), chunksize=chunksize)


def spec_items(spec: Any) -> Iterator[Item]:
    """Items of every split of a mask-folder-like ``DatasetSpec`` (images paired with label files)."""
    from pixelwise.data.pairing import paired_samples

    for name, split in spec.splits.items():
        for s in paired_samples(split):
            yield Item(name, s.stem, s.image, s.label)
