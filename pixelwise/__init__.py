"""pixelwise: semantic segmentation, from a labelled folder to a shipped model.

The public API is small on purpose (one verb per job, as in Ultralytics)::

    import pixelwise as pw
    run = pw.train("camvid.yaml", model="deeplabv3plus", encoder="efficientnet_lite0")
    metrics = pw.val(run.best, data="camvid.yaml")
    seg = pw.Segmenter.load(run.best)
    labels = seg.predict("street.jpg").labels
    pw.export(run.best, format="onnx")            # verified against PyTorch when written
    pw.predict("runs/train/best.onnx", "images/")  # a folder through the torch-free runtime
"""
from __future__ import annotations

__version__ = "0.1.0"

from pixelwise.errors import PixelwiseError  # noqa: E402

__all__ = [
    "__version__",
    "PixelwiseError",
    "DatasetSpec",
    "create_model",
    "list_models",
    "train",
    "val",
    "predict",
    "export",
    "Segmenter",
    "RuntimeSegmenter",
    "Prediction",
    "TrainConfig",
    "read_image",
]


def __getattr__(name: str):
    # Lazy imports keep `import pixelwise` (and the CLI's --help) fast: torch loads only when used.
    if name == "DatasetSpec":
        from pixelwise.data.spec import DatasetSpec

        return DatasetSpec
    if name in ("create_model", "list_models"):
        from pixelwise.models import registry

        return getattr(registry, name)
    if name == "train":
        from pixelwise.engine.trainer import train

        return train
    if name == "val":
        from pixelwise.engine.validate import val

        return val
    if name == "predict":  # a file, folder or glob through a checkpoint or an export, outputs written
        from pixelwise.runtime.batch import predict

        return predict
    if name == "export":  # the package, callable as the verb (see pixelwise/export/__init__.py)
        import importlib

        return importlib.import_module("pixelwise.export")
    if name in ("RuntimeSegmenter", "Prediction"):
        from pixelwise.runtime import predictor

        return getattr(predictor, name)
    if name == "Segmenter":
        from pixelwise.inference.predictor import Segmenter

        return Segmenter
    if name == "TrainConfig":
        from pixelwise.config import TrainConfig

        return TrainConfig
    if name == "read_image":  # an image file as the predictors read it: HxWx3 uint8 RGB, as displayed
        from pixelwise.runtime.imageio import read_image

        return read_image
    raise AttributeError(f"module 'pixelwise' has no attribute {name!r}")
