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


def _block_weights(factor: int) -> torch.Tensor:
    """(factor*factor, 4) bilinear weights of the 2x2 low-resolution samples around each pixel of
    one factor x factor output block (see ``UpsampledLabels``)."""
    t = (torch.arange(factor, dtype=torch.float64) + 0.5) / factor  # distance past the top/left sample
    w1 = torch.stack([1 - t, t], 1)  # (factor, 2)
    return torch.einsum("ya,xb->yxab", w1, w1).reshape(factor * factor, 4).float()


def mixed_blocks(labels: torch.Tensor) -> torch.Tensor:
    """Nx1xHxW float labels (edge-padded) -> Nx(H-1)x(W-1) bool: the 2x2 neighbourhoods whose labels
    differ, i.e. the blocks between samples that ``UpsampledLabels`` must interpolate."""
    return (F.max_pool2d(labels, 2, 1) + F.max_pool2d(-labels, 2, 1))[:, 0] != 0


class UpsampledLabels(nn.Module):
    """NxCxhxw logits -> Nx(h*f)x(w*f) uint8 labels: the arg-max of the logits upsampled by ``f``
    (bilinear, half-pixel, edges clamped: ``F.interpolate(..., align_corners=False)``) without
    upsampling them.

    Why: upsampling 11 classes to 384x480 and arg-maxing them was 12% of the fp32 model's time
    and 20% of the int8 model's (about 1.1 + 0.75 ms in ONNX Runtime's node profile, 2 threads).
    Every pixel between four neighbouring low-resolution samples is a convex combination of
    them, so where the four share one arg-max, so does the pixel (exact, not an approximation).
    Those f x f blocks take that label from a nearest-neighbour upsampling of the low-resolution
    label map; only blocks whose four samples disagree (9% of CamVid's at stride 4, for a
    trained model) are interpolated and arg-maxed, gathered by ``NonZero``. The block between
    samples a and a+1 covers output rows f*a + f/2 .. f*a + f/2 + f - 1 (half-pixel centres), so
    the block grid is offset by f/2 and cropped; the label map is edge-padded and the corner
    indices clamped, which reproduces the clamping without padding the logits.

    The mixed blocks are written back as rows of f pixels (one ScatterND index per block row,
    not per pixel: 0.25 -> 0.05 ms), and the nearest upsampling runs on the float label map the
    block test already made. ONNX Runtime, 11x96x120 logits of CamVid images, tail alone in
    alternation: 1.23 -> 0.92 ms per image at batch 1, 3.5 -> 2.1 at batch 8. The worst case,
    noise-like logits where every block is mixed, costs about twice a plain resize + arg-max.
    ``f`` must be even (strides are powers of two)."""

    def __init__(self, factor: int):
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"UpsampledLabels needs an even factor, got {factor}")
        self.factor = factor
        self.register_buffer("weights", _block_weights(factor))
        self.register_buffer("dy", torch.arange(factor)[None])  # (1, f): the rows of one block

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        n, c, h, w = y.shape
        f = self.factor
        dtype = torch.uint8 if c <= 256 else torch.int32
        low = F.pad(y.argmax(1, keepdim=True).float(), (1, 1, 1, 1), mode="replicate")  # Nx1x(h+2)x(w+2)
        idx = torch.nonzero(mixed_blocks(low))  # (M, 3): image, block row, block column (padded grid)
        i, a, b = idx[:, 0], idx[:, 1], idx[:, 2]
        r0, r1 = (a - 1).clamp(min=0) * w, a.clamp(max=h - 1) * w  # the block's samples, clamped
        c0, c1 = (b - 1).clamp(min=0), b.clamp(max=w - 1)
        base = i * (h * w)
        corners = torch.stack([base + r0 + c0, base + r0 + c1, base + r1 + c0, base + r1 + c1])  # (4, M)
        rows = y.permute(0, 2, 3, 1).reshape(-1, c)  # every sample's C logits
        mixed = torch.matmul(self.weights, rows[corners].reshape(4, -1)).reshape(f * f, -1, c).argmax(-1)
        # Every block's label as rows of f pixels: (N * (h+1)*f * (w+1), f).
        out = F.interpolate(low[:, :, :-1, :-1], scale_factor=float(f), mode="nearest").to(dtype).reshape(-1, f)
        at = ((i * (h + 1) + a) * f)[:, None] + self.dy  # (M, f): each mixed block's output rows
        out[at * (w + 1) + b[:, None]] = mixed.to(dtype).t().reshape(-1, f, f)
        g = f // 2
        return out.reshape(n, (h + 1) * f, (w + 1) * f)[:, g:g + h * f, g:g + w * f]


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

    ``lowres_logits`` (needs an even upsampling factor): the logits output stays at the network's
    stride (NCHW; the metadata's ``logits_scale`` says by how much the runtime must upsample it)
    and the labels come from ``UpsampledLabels``, so no full-resolution logits are computed at
    all: per 384x480 image 1.8 -> 0.9 ms in ONNX Runtime, 2.5 -> 1.2 ms in OpenVINO (3.9 -> 1.1 at
    batch 8). Scores (probabilities, TTA, tiling) are upsampled by the runtime only when asked for.

    ``resize_planar`` (with ``channels_last``; for OpenVINO): upsample NCHW, then transpose, then
    arg-max over the last axis. OpenVINO's CPU plugin interpolates NCHW in its own blocked layout
    but ran the NHWC Resize 7x slower, and its arg-max (a TopK) over axis 1 of NCHW took 3.6-4.3
    ms for 11x384x480 against 0.5 ms over the last axis: 17-19 -> 14.4 ms for the whole fp32
    default model (2 threads)."""

    def __init__(self, model: nn.Module, fp16: bool = False, labels: bool = False, pad: bool = True,
                 channels_last: bool = False, resize_planar: bool = False, lowres_logits: bool = False):
        super().__init__()
        self.stride = int(model.stride)
        self.factor = upsample_factor(model)
        self.upsample = self.factor != 1
        self.model = model.half() if fp16 else model
        self.fp16 = fp16
        self.labels = labels
        self.pad = pad
        self.resize_planar = resize_planar
        self.logits_scale = (self.factor if lowres_logits and labels and self.factor and self.factor % 2 == 0
                             else 1)
        self.upsampled_labels = UpsampledLabels(self.logits_scale) if self.logits_scale > 1 else None
        self.channels_last = (channels_last and self.logits_scale == 1
                              and (self.factor is not None or resize_planar))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        size = (h, w)  # the network's input size, from the unpadded input's shape: the padded
        if self.pad:   # tensor then feeds the stem alone, which int8 exports can widen for free
            s = self.stride
            ph, pw = (s - h % s) % s, (s - w % s) % s
            x = F.pad(x, (0, pw, 0, ph))
            size = (h + ph, w + pw)
        y = self.model.decoder(self.model.encoder(x.half() if self.fp16 else x))
        if self.upsampled_labels is not None:  # logits at the stride (uncropped), labels at full size
            y = y.float() if self.fp16 else y
            labels = self.upsampled_labels(y)
            return (y, labels[:, :h, :w] if self.pad else labels) if self.labels else y
        if self.channels_last:
            y = y.float() if self.fp16 else y
            if self.resize_planar:
                if self.upsample:
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                y = y.permute(0, 2, 3, 1)
            else:
                y = y.permute(0, 2, 3, 1)
                if self.upsample:
                    y = _UpsampleChannelsLast.apply(y, self.factor)
            if self.pad:
                y = y[:, :h, :w, :]
            return (y, label_map(y, dim=-1)) if self.labels else y
        if self.upsample:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        if self.pad:
            y = y[:, :, :h, :w]
        y = y.float() if self.fp16 else y  # no Cast node in fp32 graphs (it copies the logits)
        return (y, label_map(y)) if self.labels else y


class PipelineGraph(nn.Module):
    """uint8 HxWx3 RGB -> (labels HxW uint8, probabilities CxHxW float32): resize (optional),
    normalise and pad inside, so a C++/JS caller needs no pre- or post-processing.

    ``channels_last`` (ONNX, no ``imgsz``): upsampling, arg-max and softmax run over HxWxC, as in
    the logits graphs; the probabilities output keeps its CxHxW layout (one transpose, only in
    graphs that have that output). A labels-only pipeline never upsamples the logits
    (``UpsampledLabels``)."""

    def __init__(self, model: nn.Module, mean, std, imgsz: tuple[int, int] | None = None,
                 outputs: tuple[str, ...] = ("labels", "probabilities"), fp16: bool = False,
                 channels_last: bool = False, resize_planar: bool = False):
        super().__init__()
        # Labels only, at the network's own size: the labels come from ``UpsampledLabels``.
        fast_labels = tuple(outputs) == ("labels",) and not imgsz and channels_last
        self.core = LogitsGraph(model, fp16, labels=fast_labels, channels_last=channels_last and not imgsz,
                                resize_planar=resize_planar, lowres_logits=fast_labels)
        # (x - mean) / std as x * scale + shift, per channel of an interleaved RGB row (see forward).
        scale = 1.0 / (torch.tensor(std, dtype=torch.float32) * 255.0)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", -torch.tensor(mean, dtype=torch.float32) * 255.0 * scale)
        self.imgsz = tuple(imgsz) if imgsz else None
        self.outputs = tuple(outputs)

    def forward(self, image: torch.Tensor):
        h, w = image.shape[0], image.shape[1]
        # Normalised first (it commutes with the bilinear resize), as H rows of W*3 interleaved
        # values against rows of per-channel terms: ONNX Runtime moves the HWC -> CHW transpose
        # past element-wise ops (into the int8 stem's NHWC layout, or past the resize), and
        # broadcasting a 3-vector over HxWx3 ran one 3-element span at a time: 1.0 ms for each of
        # Sub and Mul at 384x480, against 0.1-0.2 per row-wise op.
        x = image.reshape(h, w * 3).float() * self.scale.repeat(w) + self.shift.repeat(w)
        x = x.reshape(h, w, 3).permute(2, 0, 1).unsqueeze(0)
        if self.imgsz:
            x = F.interpolate(x, size=self.imgsz, mode="bilinear", align_corners=False)
        if self.core.labels:  # labels only: the core's own label map (low-resolution or not, e.g. U-Net's)
            return self.core(x)[1][0]
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
