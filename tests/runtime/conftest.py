"""Shared by the runtime tests: a synthetic aerial scene."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 256, (9, 11, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 144x176
