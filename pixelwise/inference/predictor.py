"""``Segmenter``: the Python API for prediction.

    seg = Segmenter.load("runs/train/best.pt")
    pred = seg.predict("street.jpg", probabilities=True)
    pred.labels        # HxW uint8/int32 class ids, at the image's own size
    pred.probabilities # CxHxW float32 softmax (only when asked)
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pixelwise.data.spec import DatasetSpec
from pixelwise.engine.checkpoint import load_checkpoint, load_model_weights
from pixelwise.errors import CheckpointError, ConfigError, DatasetError
from pixelwise.runtime.imageio import load_input
from pixelwise.runtime.predictor import Prediction
from pixelwise.runtime.tiling import check_options, checked_scales
from pixelwise.runtime.visualize import DrawMixin
from pixelwise.models.fuse import fold_batchnorm
from pixelwise.models.registry import build_from_spec
from pixelwise.utils import select_device


class Segmenter(DrawMixin):
    """Predicts with a PyTorch checkpoint. Its prediction surface (``predict``, ``predict_many``,
    ``overlay``, ``colorize``, ``names``, ``colors``, ``num_classes``, ``check_options``) is
    ``RuntimeSegmenter``'s, with the same arguments and outputs; ``logits`` returns a tensor here.
    The constructor moves (and with ``half`` casts) the module it is given in place, as
    ``nn.Module.to`` does; ``load`` builds its own."""

    def __init__(self, model: torch.nn.Module, names: list[str], colors: list[tuple[int, int, int]],
                 ignore_index: int = 255, device: torch.device | str = "cpu",
                 dataset: dict[str, Any] | None = None, checkpoint: Path | None = None, half: bool = False,
                 cuda_graphs: bool = True):
        self.device = torch.device(device) if isinstance(device, str) else device
        # half: fp16 weights and compute, for GPUs: half the GPU memory (an 8000x8000 image whole on an
        # H200: 4.5 GB against 9.0), labels 99.94% equal to fp32 on CamVid val; per-image time is about
        # the same (1.8-1.9 ms with CUDA graphs, 4-7 ms eager; BENCHMARKS.md). Probabilities stay fp32.
        self.dtype = torch.float16 if half else torch.float32
        if half and self.device.type == "cpu":  # load() refuses this; allowed here for tests of the fp16 path
            warnings.warn("half precision on the CPU is far slower than fp32 (about 70x on CamVid images)",
                          stacklevel=2)
        self.model = model.to(self.device, self.dtype).eval()
        self.channels_last = self.device.type == "cpu" or half  # NHWC: what fp16 tensor-core convs want
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # The network as predict calls it: on a GPU replayed from CUDA graphs per input shape
        # (graphs.py), whole (logits) and up to the decoder's stride (tiles blended at that stride).
        net = self.model
        self.forward: Callable[[torch.Tensor], torch.Tensor] = net
        self.lowres_forward: Callable[[torch.Tensor], torch.Tensor] = lambda x: net.decoder(net.encoder(x))
        if cuda_graphs and self.device.type == "cuda":
            from pixelwise.inference.graphs import GraphedForward

            self.forward, self.lowres_forward = GraphedForward(self.forward), GraphedForward(self.lowres_forward)
        self.names, self.colors, self.ignore_index = list(names), [tuple(c) for c in colors], ignore_index
        self._dataset = dataset or {}
        self.checkpoint = checkpoint

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto", half: bool = False,
             cuda_graphs: bool = True) -> "Segmenter":
        """The checkpoint's model, BatchNorm folded, on ``device`` (``half``: in fp16, for GPUs;
        ``cuda_graphs``: on a GPU, replay each input shape's forward from a CUDA graph)."""
        path = Path(checkpoint)
        ckpt = load_checkpoint(path)
        device = select_device(device)
        if half and device.type == "cpu":
            raise ConfigError(f"half precision (--half) needs a GPU, and {path} would be loaded on the CPU, where "
                              "fp16 runs about 70x slower than fp32.", fix="drop --half; for a faster CPU model, "
                              "export it with --int8 and predict with the export")
        if "model_spec" not in ckpt or "model" not in ckpt:
            raise CheckpointError(f"{path} holds no model.", path=path, fix="use best.pt or last.pt")
        model = build_from_spec(ckpt["model_spec"])
        load_model_weights(model, ckpt, path)
        # Inference only: BatchNorm folded into the convs (1.65x faster eager on a CPU; checked).
        model, _ = fold_batchnorm(model.eval(), torch.randn(1, 3, 2 * model.stride, 3 * model.stride))
        ds = ckpt.get("dataset", {})
        seg = cls(model, ds.get("names", [str(i) for i in range(model.num_classes)]),
                  ds.get("colors") or [], ds.get("ignore_index", 255), device,
                  ds.get("description"), path, half=half, cuda_graphs=cuda_graphs)
        if half:  # folded BatchNorm can scale weights past fp16's range: say so now, not as NaN labels
            side = 4 * model.stride  # a ramp over the range of normalised images; no RNG state touched
            ramp = torch.linspace(-2.5, 2.5, 3 * side * side, device=device).view(1, 3, side, side)
            with torch.no_grad():
                probe = seg.model(ramp.to(seg.dtype).contiguous(memory_format=torch.channels_last))
            if not torch.isfinite(probe).all():
                raise ConfigError(f"{path} overflows in half precision (its fp16 logits are not finite).",
                                  fix="drop --half")
        return seg

    def __repr__(self) -> str:
        arch = getattr(self.model, "spec", {}) or {}
        return (f"Segmenter({str(self.checkpoint)!r}, arch={arch.get('arch', '?')}, encoder={arch.get('encoder', '?')}, "
                f"device={self.device}{', half' if self.dtype == torch.float16 else ''}, classes={self.num_classes})")

    # ------------------------------------------------------------------ metadata
    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def dataset_record(self) -> dict[str, Any]:
        if not self._dataset:
            raise DatasetError("This model carries no dataset description.",
                               fix="pass the dataset YAML explicitly (--data)")
        return self._dataset

    def check_compatible(self, spec: DatasetSpec) -> None:
        spec.check_model(self.num_classes, self.names, self.checkpoint,
                         fix="evaluate on the dataset the model was trained for, or retrain")

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def logits(self, image: np.ndarray, flip: bool = False) -> torch.Tensor:
        """1xCxHxW float32 logits for an HxWx3 uint8 RGB array (any size)."""
        chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        if not chw.flags.writeable:  # e.g. a 1x1 resize for a TTA scale: Pillow's read-only buffer, no copy made
            chw = chw.copy()
        x = self.to_input(torch.from_numpy(chw)[None])
        out = self.forward(x)
        if flip:
            out = (out + self.forward(x.flip(-1)).flip(-1)) / 2
        return out.float()

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> the model's input: normalised, on its device, in its dtype and layout."""
        from pixelwise.engine.evaluator import normalize_batch

        return normalize_batch(images, self.model.mean, self.model.std, self.device, self.channels_last, self.dtype)

    def check_options(self, probabilities: bool = False, scales: Sequence[float] | None = None,
                      tile: int | None = None, overlap: int | None = None, batch: int = 4, flip: bool = False,
                      confidence: bool = False, **_: object) -> int:
        """Refuse ``predict`` options that cannot work (before a folder's first image is read);
        returns the tile overlap to use."""
        return check_options(probabilities=probabilities, scales=scales, tile=tile, overlap=overlap,
                             stride=int(self.model.stride), batch=batch, flip=flip, confidence=confidence)

    def predict(self, image: str | Path | np.ndarray, probabilities: bool = False, flip: bool = False,
                scales: Sequence[float] | None = None, tile: int | None = None, overlap: int | None = None,
                confidence: bool = False, batch: int = 4) -> Prediction:
        """Label map (and probabilities / confidence when asked) at the image's own size; the same
        API as ``RuntimeSegmenter.predict``: ``scales`` multi-scale TTA, ``tile`` sliding-window
        mode with ``overlap`` (memory bounded by the tile; confidence but no probabilities)."""
        overlap = self.check_options(probabilities=probabilities, scales=scales, tile=tile, overlap=overlap, batch=batch,
                                     flip=flip, confidence=confidence)
        scales = checked_scales(scales)
        image, src = load_input(image)  # a path, a PIL image or an array; the same checks in both predictors
        if tile is not None:
            from pixelwise.inference.tiling import tiled_predict

            conf = np.empty(image.shape[:2], np.float32) if confidence else None
            labels = tiled_predict(self, image, tile, overlap, batch, flip, confidence_out=conf)
            return Prediction(labels, None, src, conf, names=self.names)
        if scales:
            from pixelwise.inference.tta import tta_logits

            logits = tta_logits(self, image, flip=flip, scales=scales)
        else:
            logits = self.logits(image, flip=flip)
        labels = logits.argmax(1)[0].to("cpu", torch.uint8 if self.num_classes <= 256 else torch.int32).numpy()
        probs = F.softmax(logits.float(), 1)[0].cpu().numpy() if (probabilities or confidence) else None
        conf = probs.max(0) if confidence else None
        return Prediction(labels, probs if probabilities else None, src, conf, names=self.names)


from pixelwise.runtime.batch import predict  # noqa: E402,F401  (the verb: checkpoints and exports)
