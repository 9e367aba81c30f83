"""The modules that get exported: the model with stride padding done in the graph (dynamic
H/W/batch), and optionally the whole pipeline (uint8 image in, labels/probabilities out)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_factor(model: nn.Module) -> int | None:
    """How much the head's logits must be upsampled to reach the input size: 1 (none), a whole
    factor, or None when it is not a whole number (decided once, by probing)."""
    s = model.stride
    with torch.no_grad():
        y = model.decoder(model.encoder(torch.zeros(1, 3, 2 * s, 2 * s)))
    h = y.shape[-1]
    return (2 * s) // h if (2 * s) % h == 0 else None


class _UpsampleChannelsLast(torch.autograd.Function):
    """Bilinear (half-pixel) upsampling of NHWC logits by a whole factor, exported as one ONNX
    Resize with scales (1, f, f, 1).

    Why: ONNX Runtime's bilinear Resize on NCHW interpolates one channel plane at a time; on NHWC
    it interpolates all channels of a pixel at once, and the arg-max over the last axis is
    contiguous. For 11 classes at 384x480 the upsampling + arg-max went from 2.0-2.8 to
    1.5-1.8 ms per image (batch 1-8, 2 threads). PyTorch cannot say "resize axes 1 and 2", hence
    the explicit symbolic."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: int) -> torch.Tensor:
        y = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=float(factor), mode="bilinear",
                          align_corners=False)
        return y.permute(0, 2, 3, 1)

    @staticmethod
    def symbolic(g, x, factor: int):
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        scales = g.op("Constant", value_t=torch.tensor([1.0, float(factor), float(factor), 1.0]))
        return g.op("Resize", x, roi, scales, mode_s="linear",
                    coordinate_transformation_mode_s="half_pixel", nearest_mode_s="floor")


def label_map(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Arg-max over classes (``dim``), as uint8 when the classes fit (a quarter of int32's bytes)."""
    labels = logits.argmax(dim)
    return labels.to(torch.uint8) if logits.shape[dim] <= 256 else labels.to(torch.int32)


def channel_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1, spelled out: ONNX Runtime's Softmax on a non-last axis of NCHW
    transposes around a generic kernel and took 46 ms for 11x384x480 (the whole int8 network
    takes under 30); max/exp/sum/div run as plain element-wise kernels."""
    e = (logits - logits.amax(1, keepdim=True)).exp()
    return e / e.sum(1, keepdim=True)


class LogitsGraph(nn.Module):
    """Normalised float NCHW (any N, H, W) -> NxCxHxW logits. Same maths as
    ``SegmentationModel.forward`` but branch-free, so one trace serves every size.

    ``labels``: a second output, the NxHxW label map computed in the graph. A caller that only
    wants labels fetches that output alone: the arg-max then runs in the runtime's kernels (in
    numpy it cost about as much as a quarter of the network at 384x480).

    ``pad=False``: the caller pads H and W to a multiple of the stride (zeros after
    normalisation, as the model does) and crops the outputs. The runtime does this only when an
    image needs it; in the graph the Pad and the two crop Slices copy full tensors on every call,
    aligned or not (15% of the int8 model's time at 384x480).

    ``channels_last``: the logits come out NxHxWxC (the metadata says ``logits_layout: NHWC``),
    upsampled and arg-maxed channels-last (see ``_UpsampleChannelsLast``). ONNX Runtime computes
    every output of a graph whichever are fetched, so the logits must be the very tensor the
    labels come from; a transpose back to NCHW would cost what the layout saves. Needs a whole
    upsampling factor (else the graph stays NCHW).

    ``resize_planar`` (with ``channels_last``; for OpenVINO): upsample NCHW, then transpose, then
    arg-max over the last axis. OpenVINO's CPU plugin interpolates NCHW in its own blocked layout
    but ran the NHWC Resize 7x slower, and its arg-max (a TopK) over axis 1 of NCHW took 3.6-4.3
    ms for 11x384x480 against 0.5 ms over the last axis: 17-19 -> 14.4 ms for the whole fp32
    default model (2 threads)."""

    def __init__(self, model: nn.Module, fp16: bool = False, labels: bool = False, pad: bool = True,
                 channels_last: bool = False, resize_planar: bool = False):
        super().__init__()
        self.stride = int(model.stride)
        self.factor = upsample_factor(model)
        self.upsample = self.factor != 1
        self.model = model.half() if fp16 else model
        self.fp16 = fp16
        self.labels = labels
        self.pad = pad
        self.resize_planar = resize_planar
        self.channels_last = channels_last and (self.factor is not None or resize_planar)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if self.pad:
            s = self.stride
            x = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s))
        y = self.model.decoder(self.model.encoder(x.half() if self.fp16 else x))
        if self.channels_last:
            y = y.float() if self.fp16 else y
            if self.resize_planar:
                if self.upsample:
                    y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
                y = y.permute(0, 2, 3, 1)
            else:
                y = y.permute(0, 2, 3, 1)
                if self.upsample:
                    y = _UpsampleChannelsLast.apply(y, self.factor)
            if self.pad:
                y = y[:, :h, :w, :]
            return (y, label_map(y, dim=-1)) if self.labels else y
        if self.upsample:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.pad:
            y = y[:, :, :h, :w]
        y = y.float() if self.fp16 else y  # no Cast node in fp32 graphs (it copies the logits)
        return (y, label_map(y)) if self.labels else y


class PipelineGraph(nn.Module):
    """uint8 HxWx3 RGB -> (labels HxW uint8, probabilities CxHxW float32): resize (optional),
    normalise and pad inside, so a C++/JS caller needs no pre- or post-processing.

    ``channels_last`` (ONNX, no ``imgsz``): upsampling, arg-max and softmax run over HxWxC, as in
    the logits graphs; the probabilities output keeps its CxHxW layout (one transpose, only in
    graphs that have that output)."""

    def __init__(self, model: nn.Module, mean, std, imgsz: tuple[int, int] | None = None,
                 outputs: tuple[str, ...] = ("labels", "probabilities"), fp16: bool = False,
                 channels_last: bool = False, resize_planar: bool = False):
        super().__init__()
        self.core = LogitsGraph(model, fp16, channels_last=channels_last and not imgsz,
                                resize_planar=resize_planar)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))
        self.imgsz = tuple(imgsz) if imgsz else None
        self.outputs = tuple(outputs)

    def forward(self, image: torch.Tensor):
        x = image.permute(2, 0, 1).unsqueeze(0).float()
        h, w = x.shape[-2], x.shape[-1]
        if self.imgsz:
            x = F.interpolate(x, size=self.imgsz, mode="bilinear", align_corners=False)
        x = (x - self.mean) * self.inv_std
        logits = self.core(x)
        if self.imgsz:
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        last = self.core.channels_last  # logits 1xHxWxC instead of 1xCxHxW
        out = []
        if "labels" in self.outputs:
            out.append(label_map(logits, dim=-1 if last else 1)[0])
        if "probabilities" in self.outputs:
            out.append(logits.softmax(-1)[0].permute(2, 0, 1) if last else channel_softmax(logits)[0])
        return tuple(out) if len(out) > 1 else out[0]
