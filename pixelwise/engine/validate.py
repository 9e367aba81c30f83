"""``val``: score a checkpoint or an exported model on a dataset split, and write the results.

Torch-free at import: an exported ``.onnx`` / OpenVINO ``.xml`` is scored through the runtime
(numpy + ONNX Runtime), so ``pixelwise val --model best.onnx`` works with only
``pixelwise[runtime]`` installed; checkpoints load PyTorch when they are met.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from pixelwise.engine.metrics import SegMetrics
from pixelwise.engine.model_file import check_checkpoint_file
from pixelwise.errors import ConfigError
from pixelwise.runtime.backends import is_exported


def val(model: str | Path | Any, data: Any = None, split: str = "val", out_dir: str | Path | None = None,
        device: str = "auto", flip: bool = False, max_images: int | None = None,
        progress: bool = True, half: bool = False) -> SegMetrics:
    """Evaluate a checkpoint, a ``Segmenter`` or an exported ``.onnx``/OpenVINO ``.xml`` model on a
    dataset split (``half``: a checkpoint in fp16, for GPUs); writes ``metrics_<split>.json`` and
    ``confusion_<split>.png`` when ``out_dir`` is given (the plot needs matplotlib, which
    runtime-only installs may lack: then it is skipped).

    ``data`` defaults to the dataset the model was trained on (recorded in it).
    """
    t0 = time.time()
    if max_images is not None and max_images < 1:
        raise ConfigError(f"--max-images {max_images}: metrics of no image are undefined.",
                          fix="pass 1 or more, or leave it out to score the whole split")
    if half:
        from pixelwise.runtime.batch import refuse_half

        refuse_half(model)
    if is_exported(model):  # scored through the torch-free runtime: this checks the export itself
        from pixelwise.runtime.evaluate import evaluate_onnx

        metrics = evaluate_onnx(model, data, split=split, flip=flip, max_images=max_images, progress=progress,
                                device=device)
    else:
        if isinstance(model, (str, Path)):
            check_checkpoint_file(model)  # before torch: a runtime-only install hears what the file is
        from pixelwise.engine.evaluator import evaluate_checkpoint

        metrics = evaluate_checkpoint(model, data, split=split, device=device, flip=flip,
                                      max_images=max_images, progress=progress, half=half)
    if len(metrics.names) == 2 and metrics.confusion[1].sum() == 0:  # n/a in the table: say the likely why
        from pixelwise.data.samples import binary_convert_fix

        warnings.warn(f"Class 1 '{metrics.names[1]}' has no pixel in the labels of split '{split}', so its "
                      f"IoU is n/a. If {binary_convert_fix(data if isinstance(data, (str, Path)) else None)}.",
                      stacklevel=2)
    if out_dir is not None:
        half = half or str(getattr(model, "dtype", "")) == "torch.float16"  # a Segmenter loaded with half
        write_results(metrics, Path(out_dir), split, str(getattr(model, "checkpoint", model)),
                      seconds=time.time() - t0, flip=flip, half=half)
    return metrics


def write_results(metrics: SegMetrics, out: Path, split: str, model: str, seconds: float, flip: bool,
                  half: bool = False) -> None:
    from pixelwise.data.io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    record = metrics.to_dict()
    record.update(split=split, images=metrics.images, model=model, seconds=round(seconds, 2), flip_tta=flip,
                  half=half)
    atomic_write_bytes(out / f"metrics_{split}.json", json.dumps(record, indent=2).encode())
    try:
        from pixelwise.engine.plots import plot_confusion
    except ImportError:  # matplotlib comes with the train extra
        return
    plot_confusion(metrics, out / f"confusion_{split}.png")
