"""Deployment fixtures: the tiny trained run exported once per session (reused by runtime/serve)."""
from __future__ import annotations

from pathlib import Path

import pytest


def exported_onnx(tiny_run) -> Path:
    """best.onnx next to the tiny run's best.pt (exported and verified on its val images once)."""
    from pixelwise.export import export

    path = Path(tiny_run.best).with_suffix(".onnx")
    if not path.exists():
        export(tiny_run.best, "onnx", path)
    return path


@pytest.fixture(scope="session")
def onnx_model(tiny_run) -> Path:
    return exported_onnx(tiny_run)
