"""Binary and medical masks: 0/255 masks, inverted masks, 16-bit instance images -> foreground.

All three become two classes, ``background`` (0) and ``foreground`` (1) (names configurable):

* ``mode="threshold"``: value >= ``threshold`` (default 128) is foreground (0/255 and 0/1
  masks alike, since 1 >= 1 when ``threshold=1``; the default auto-picks 1 for 0/1 masks).
* ``invert=True``: foreground is where the mask is dark (masks drawn black-on-white).
* ``mode="instances"``: any non-zero id of an 8/16-bit instance label image is foreground.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader, spec_items
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import ConfigError


@dataclass
class BinaryMaskReader(Reader):
    spec: DatasetSpec | None = None
    mode: str = "threshold"  # threshold | instances
    threshold: int | None = None  # None: 1 for 0/1 masks, 128 otherwise (decided per file)
    invert: bool = False

    @classmethod
    def from_spec(cls, spec: DatasetSpec | str | Path, mode: str = "threshold",
                  threshold: int | None = None, invert: bool = False,
                  names: list[str] | None = None) -> "BinaryMaskReader":
        if mode not in ("threshold", "instances"):
            raise ConfigError(f"Unknown binary mode '{mode}'.", fix="use threshold or instances")
        spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.load(spec)
        names = names or (spec.names if len(spec.names) == 2 else ["background", "foreground"])
        r = cls(root=spec.root, names=list(names), ignore_index=255, format="binary", spec=spec,
                mode=mode, threshold=threshold, invert=invert)
        if mode == "instances":
            r.notes.append("instance ids were merged into one foreground class")
        return r

    def items(self) -> Iterator[Item]:
        assert self.spec is not None
        return spec_items(self.spec)

    def label(self, item: Item) -> np.ndarray:
        raw = read_label(item.ref)
        if self.mode == "instances":
            fg = raw != 0
        else:
            t = self.threshold
            if t is None:
                t = 1 if raw.max(initial=0) <= 1 else (128 if raw.dtype == np.uint8 else 32768)
            fg = raw >= t
        if self.invert:
            fg = ~fg
        return fg.astype(np.uint8)
