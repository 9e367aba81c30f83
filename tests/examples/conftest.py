"""The JavaScript example installed once per test session, shared by the Node and browser tests."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.examples.helpers import EXAMPLE, NODE, NPM


@pytest.fixture(scope="session")
def js_example(tmp_path_factory) -> Path:
    """A copy of examples/javascript with its locked dependencies installed (npm ci)."""
    if not (NODE and NPM):
        pytest.skip("node and npm are not installed")
    where = tmp_path_factory.mktemp("js")
    for name in ("package.json", "package-lock.json", "segment.mjs", "onnx-metadata.mjs"):
        shutil.copy(EXAMPLE / name, where / name)
    shutil.copytree(EXAMPLE / "browser", where / "browser")
    # --ignore-scripts: onnxruntime-node's install script only fetches GPU providers.
    subprocess.run([NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=where, check=True,
                   capture_output=True, timeout=600)
    return where


@pytest.fixture(scope="session")
def pipeline_model(tiny_run, tmp_path_factory) -> Path:
    """A verified --pipeline ONNX export with a label-map output (uint8 image in, labels out)."""
    from pixelwise.export import export

    return export(tiny_run.best, "onnx", tmp_path_factory.mktemp("pipe") / "pipe.onnx", pipeline=True,
                  outputs=("labels",), verify_images=1).path
