"""What the example tests share besides fixtures: where node/npm are, the tiny run's photos."""
from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "javascript"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def val_images(tiny_run) -> list[Path]:
    """The tiny run's validation photos (real CamVid JPEGs)."""
    from pixelwise.inference.predictor import Segmenter

    record = Segmenter.load(tiny_run.best, device="cpu").dataset_record()
    return sorted(Path(record["val"]["images"]).glob("*.jpg"))
