"""``RuntimeSegmenter``: the torch-free twin of ``pixelwise.Segmenter`` for exported models.

    seg = RuntimeSegmenter.load("model.onnx")            # numpy + Pillow + onnxruntime only
    pred = seg.predict("street.jpg", probabilities=True)  # same API and outputs as Segmenter
    pred = seg.predict("aerial.npy", tile=512, overlap=64)  # huge images, bounded memory
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pixelwise.runtime.backends import Backend, open_backend
from pixelwise.runtime.imageio import ensure_rgb, load_input, resize_image, resize_scores
from pixelwise.runtime.metadata import ExportMetadata, RuntimeModelError
from pixelwise.runtime.tiling import check_options, checked_scales, lowres_blend_exact, tiled_labels, tiled_labels_lowres
from pixelwise.runtime.visualize import DrawMixin, area_summary


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Zero-pad NCHW bottom/right to a multiple of ``multiple`` (a no-op, no copy, when aligned)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)))


def upsample_logits(logits: np.ndarray, size: tuple[int, int], crop: tuple[int, int]) -> np.ndarray:
    """NxCxhxw logits at the network's stride -> NxCx``crop`` float32: bilinear (half-pixel) to
    ``size`` as the model upsamples, then cropped; one class plane at a time, so the only
    full-size array is the result."""
    n, c = logits.shape[:2]
    out = np.empty((n, c, *crop), np.float32)
    for i in range(n):
        for k in range(c):
            out[i, k] = resize_scores(np.ascontiguousarray(logits[i, k:k + 1], np.float32), size)[0, :crop[0], :crop[1]]
    return out


def softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(eq=False)  # arrays have no single truth value: compare .labels with numpy
class Prediction:
    """One image's result, from either predictor (torch or runtime): ``labels`` HxW uint8 (int32
    above 256 classes), ``probabilities`` CxHxW float32 and ``confidence`` (the max probability)
    HxW float32 when asked, ``names`` the model's classes."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    source: Path | None = None
    confidence: np.ndarray | None = None
    names: list[str] | None = None

    def _names(self, names: list[str] | None) -> list[str]:
        names = list(names if names is not None else self.names or [])
        top = int(self.labels.max(initial=0))
        if not names or top >= len(names):
            from pixelwise.errors import ConfigError

            raise ConfigError(f"{len(names)} class names given for labels up to {top}.",
                              fix="pass the model's names (seg.names), or leave names out")
        return names

    def class_areas(self, names: list[str] | None = None) -> dict[str, float]:
        """Share of the image (0..1) given to each class (``names``: the model's by default)."""
        names = self._names(names)
        counts = np.bincount(self.labels.ravel(), minlength=len(names))[: len(names)]
        return {n: float(c) / self.labels.size for n, c in zip(names, counts)}

    def area_summary(self, names: list[str] | None = None) -> list[dict]:
        """Per class: id, name, pixels and fraction of the image (the fractions sum to 1)."""
        return area_summary(self.labels, self._names(names))

    def to_png(self) -> bytes:
        """The label map as PNG bytes (8-bit, 16-bit above 256 classes), as ``predict`` writes
        ``_labels.png`` and the server answers ``output=labels``: for a web backend or a store."""
        from pixelwise.runtime.imageio import encode_png

        return encode_png(self.labels)

    def __repr__(self) -> str:
        def shape(a: np.ndarray | None) -> str:
            return "None" if a is None else f"{a.dtype}[{'x'.join(map(str, a.shape))}]"

        return (f"Prediction(labels={shape(self.labels)}, probabilities={shape(self.probabilities)}, "
                f"confidence={shape(self.confidence)}, source={str(self.source) if self.source else None!r}, "
                f"classes={len(self.names) if self.names else '?'})")


class RuntimeSegmenter(DrawMixin):
    """Predicts with an exported model; handles both logits graphs and embedded-pipeline graphs.
    Its prediction surface (``predict``, ``predict_many``, ``overlay``, ``colorize``, ``names``,
    ``colors``, ``num_classes``, ``check_options``) is ``Segmenter``'s; ``logits`` returns numpy."""

    def __init__(self, backend: Backend, path: Path | None = None):
        self.backend = backend
        self.meta: ExportMetadata = backend.meta
        self.path = path
        self.names = list(self.meta.names)
        self.colors = [tuple(c) for c in self.meta.colors]
        self.ignore_index = self.meta.ignore_index
        self._mean = np.asarray(self.meta.mean, np.float32).reshape(1, 3, 1, 1) * 255.0
        self._inv_std = 1.0 / (np.asarray(self.meta.std, np.float32).reshape(1, 3, 1, 1) * 255.0)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", threads: int | None = None,
             device: str = "auto") -> "RuntimeSegmenter":
        return cls(open_backend(path, backend, threads, device), Path(path))

    def __repr__(self) -> str:
        return (f"RuntimeSegmenter({str(self.path)!r}, runtime={getattr(self.backend, 'runtime', '?')}, "
                f"graph={self.meta.graph}, precision={self.meta.precision}, classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def is_pipeline(self) -> bool:
        return self.meta.graph == "pipeline"

    @property
    def has_labels_output(self) -> bool:
        """Whether the graph computes the label map itself (exports since 0.1 do)."""
        return "labels" in self.backend.output_names

    # ------------------------------------------------------------------ raw scores
    def labels(self, images: np.ndarray) -> np.ndarray:
        """NxHxW label maps for same-size uint8 NxHxWx3 images, from the graph's own arg-max
        (only that output is fetched)."""
        if self.is_pipeline:
            return np.stack([self.backend.run(np.ascontiguousarray(im), ["labels"])[0] for im in images])
        h, w = images.shape[1:3]
        return self.backend.run(self._feed(images), ["labels"])[0][:, :h, :w]

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 NxHxWx3 -> normalised float32 NCHW, as ``normalize_batch`` does in torch."""
        x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), np.float32)
        x -= self._mean
        x *= self._inv_std  # in place: one float copy of the batch, not three
        return x

    @property
    def has_scores(self) -> bool:
        """Whether the graph gives class scores: what flip/multi-scale TTA, tiling, confidence
        and probabilities need. Only a labels-only ``--pipeline`` export has none."""
        return not self.is_pipeline or "probabilities" in self.backend.output_names

    def scores(self, images: np.ndarray) -> np.ndarray:
        """NxCxHxW scores for a batch of same-size uint8 NxHxWx3 images: logits for logits graphs,
        probabilities for pipeline graphs (their only float output)."""
        if self.is_pipeline:
            outs = []
            for im in images:
                res = self.backend.run(np.ascontiguousarray(im))
                probs = [r for r in res if r.ndim == 3 and r.dtype.kind == "f"]
                if not probs:
                    raise RuntimeModelError(f"{self.path} is a pipeline export without probabilities.",
                                            path=self.path, fix="re-export with --outputs labels,probabilities")
                outs.append(probs[0].astype(np.float32, copy=False))
            return np.stack(outs)
        h, w = images.shape[1:3]
        feed = self._feed(images)
        size = feed.shape[-2:]
        logits = self.backend.run(feed, ["logits"])[0]
        del feed  # tiled inference holds a batch of these: keep only what is returned
        if self.meta.logits_layout == "NHWC":
            logits = logits.transpose(0, 3, 1, 2)  # a view: callers index it, nothing copies
        if self.meta.logits_scale > 1:
            return upsample_logits(logits, size, (h, w))
        return logits[:, :, :h, :w].astype(np.float32, copy=False)

    def additive_scores(self, images: np.ndarray) -> np.ndarray:
        """Scores that may be averaged, resized and blended like logits: the logits, or for pipeline
        graphs log-probabilities (the logits less a per-pixel constant, so every average has the
        arg-max and softmax of averaged logits). Averaging the probabilities themselves, as TTA
        and tiling of pipeline exports did, agreed with the checkpoint on 88-98% of pixels."""
        sc = self.scores(images)
        return np.log(np.maximum(sc, np.finfo(np.float32).tiny)) if self.is_pipeline else sc

    def _feed(self, images: np.ndarray) -> np.ndarray:
        """Normalised NCHW, zero-padded to the multiple the graph needs (as the model pads)."""
        return pad_to_multiple(self.normalize(images), self.meta.input_multiple)

    def logits(self, image: np.ndarray, flip: bool = False,
               scales: Sequence[float] | None = None) -> np.ndarray:
        """1xCxHxW scores (``additive_scores``: logits, or a pipeline's log-probabilities) for one
        HxWx3 uint8 image with optional flip / multi-scale TTA, averaged at the image's own size."""
        image = ensure_rgb(np.asarray(image))
        h, w = image.shape[:2]
        total, n = None, 0
        for s in (scales or (1.0,)):
            im = image if s == 1.0 else resize_image(image, (max(1, round(h * s)), max(1, round(w * s))))
            views = [im, im[:, ::-1]] if flip else [im]
            for k, v in enumerate(views):
                sc = self.additive_scores(np.ascontiguousarray(v)[None])[0]
                if k == 1:
                    sc = sc[:, :, ::-1]
                sc = resize_scores(np.ascontiguousarray(sc), (h, w))
                total = sc if total is None else total + sc
                n += 1
        return (total / n)[None]

    # ------------------------------------------------------------------ prediction
    def check_options(self, probabilities: bool = False, scales: Sequence[float] | None = None,
                      tile: int | None = None, overlap: int | None = None, batch: int = 4, flip: bool = False,
                      confidence: bool = False, **_: object) -> int:
        """Refuse ``predict`` options that cannot work (before a folder's first image is read);
        returns the tile overlap to use."""
        scales = checked_scales(scales)
        if not self.has_scores:
            wanted = [name for name, on in (("flip", flip), ("scales", bool(scales)), ("tile", tile is not None),
                                            ("probabilities", probabilities), ("confidence", confidence)) if on]
            if wanted:
                raise RuntimeModelError(f"{self.path} is a labels-only pipeline export: {', '.join(wanted)} "
                                        "need(s) class scores.", path=self.path,
                                        fix=f"drop {', '.join(wanted)}, or re-export with --outputs labels,probabilities")
        return check_options(probabilities=probabilities, scales=scales, tile=tile, overlap=overlap,
                             stride=self.meta.stride, batch=batch, flip=flip, confidence=confidence)

    def predict(self, image: str | Path | np.ndarray, probabilities: bool = False, flip: bool = False,
                scales: Sequence[float] | None = None, tile: int | None = None, overlap: int | None = None,
                confidence: bool = False, batch: int = 4) -> Prediction:
        """Label map (and probabilities / confidence when asked) at the image's own size.

        ``tile``: sliding-window mode with ``overlap`` and weighted blending (memory bounded by the
        tile; probabilities are not kept in this mode, confidence is)."""
        overlap = self.check_options(probabilities=probabilities, scales=scales, tile=tile, overlap=overlap, batch=batch,
                                     flip=flip, confidence=confidence)
        scales = checked_scales(scales)
        image, src = load_input(image)  # a path, a PIL image or an array; the same checks in both predictors
        if tile is not None:
            conf = np.empty(image.shape[:2], np.float32) if confidence else None
            if self.lowres_factor and lowres_blend_exact(image.shape[1], self.meta.input_multiple, flip):
                # blend the graph's own stride-level logits
                labels = tiled_labels_lowres(image, self._lowres_fn(flip), self.num_classes, self.lowres_factor,
                                             self.meta.input_multiple, tile, overlap, batch, confidence_out=conf)
                return Prediction(labels, None, src, conf, names=self.names)
            fn = self._tta_fn(flip)
            labels = tiled_labels(image, fn, self.num_classes, tile, overlap, batch, confidence_out=conf,
                                  multiple=self.meta.stride)
            return Prediction(labels, None, src, conf, names=self.names)
        if not (probabilities or confidence or flip or scales) and self.has_labels_output:
            return Prediction(self.labels(image[None])[0], None, src, None, names=self.names)
        given = self.is_pipeline and not (flip or scales)  # one view: the graph's probabilities as they are
        sc = self.scores(image[None])[0] if given else self.logits(image, flip=flip, scales=scales)[0]
        labels = sc.argmax(0).astype(np.uint8 if self.num_classes <= 256 else np.int32)
        probs = None
        if probabilities or confidence:  # of the logits, or of a pipeline's averaged log-probabilities
            probs = sc if given else softmax(sc, 0)
        conf = probs.max(0) if confidence and probs is not None else None
        return Prediction(labels, probs if probabilities else None, src, conf, names=self.names)

    @property
    def lowres_factor(self) -> int | None:
        """The logits' stride when tiles can be blended at it (NCHW logits, even stride dividing
        the input multiple); None for pipeline graphs and full-size logits."""
        f = self.meta.logits_scale
        if self.is_pipeline or self.meta.logits_layout != "NCHW" or f < 2 or f % 2 or self.meta.input_multiple % f:
            return None
        return f

    def _lowres_fn(self, flip: bool):
        """Tiles (sizes multiples of the input multiple) -> their stride-level logits; the part of
        a tile outside the image is zero after normalisation, as the graph's own padding."""
        def fn(tiles: np.ndarray, valid) -> np.ndarray:
            x = self.normalize(tiles)
            for k, (vh, vw) in enumerate(valid):
                x[k, :, vh:] = 0
                x[k, :, :, vw:] = 0
            logits = self.backend.run(x, ["logits"])[0]
            if flip:  # mirrored with its padding: stride cells stay aligned (tile widths are multiples)
                logits = (logits + self.backend.run(np.ascontiguousarray(x[..., ::-1]), ["logits"])[0][..., ::-1]) / 2
            return logits.astype(np.float32, copy=False)

        return fn

    def _tta_fn(self, flip: bool):
        if not flip:
            return self.additive_scores

        def fn(tiles: np.ndarray) -> np.ndarray:
            return (self.additive_scores(tiles)
                    + self.additive_scores(np.ascontiguousarray(tiles[:, :, ::-1]))[..., ::-1]) / 2

        return fn

