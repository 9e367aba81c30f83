"""Learning-rate schedule: linear warm-up, then poly or cosine decay, as a pure function of the
iteration (so a resumed run lands on exactly the same learning rate)."""
from __future__ import annotations

import math


def lr_factor(it: int, total: int, warmup: int, kind: str = "poly", power: float = 0.9,
              min_factor: float = 0.0) -> float:
    if total <= 0:
        return 1.0
    if warmup > 0 and it < warmup:
        return (it + 1) / warmup
    progress = min(1.0, (it - warmup) / max(1, total - warmup))
    if kind == "poly":
        f = (1.0 - progress) ** power
    elif kind == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "constant":
        f = 1.0
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return min_factor + (1.0 - min_factor) * f
