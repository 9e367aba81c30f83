"""Small helpers shared across the package: device choice, threads, seeds, run folders."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from pixelwise.errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu. A CUDA build without a GPU falls back to cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"Unknown device '{name}'.", fix="use auto, cpu, cuda, cuda:0 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible.",
                          fix="use --device auto or --device cpu")
    return dev


def set_threads(threads: int = 0) -> int:
    """Use every core for intra-op parallelism (the default of 0), or the number given."""
    n = threads if threads > 0 else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                     else os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def next_run_dir(project: str | Path, name: str, exist_ok: bool = False) -> Path:
    """runs/train, then runs/train2, runs/train3... unless exist_ok (as Ultralytics does)."""
    base = Path(project) / name
    if exist_ok or not base.exists():
        return base
    i = 2
    while (Path(project) / f"{name}{i}").exists():
        i += 1
    return Path(project) / f"{name}{i}"
