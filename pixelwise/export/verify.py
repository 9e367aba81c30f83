"""Export-time verification: the exported file must reproduce PyTorch on real images.

Reports the max logit (or probability) difference and the pixel-label agreement; below the
threshold (99.9% by default) the export fails loudly instead of shipping a wrong model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pixelwise.export import ExportError

ScoreFn = Callable[[np.ndarray], np.ndarray]
LabelFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class VerifyReport:
    images: int
    pixels: int
    agreement: float  # share of pixels whose label equals PyTorch's
    max_abs_diff: float  # max |exported - PyTorch| over the compared scores
    compared: str  # "logits" or "probabilities"
    sizes: list[list[int]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # The graph's own label output (computed in the graph without upsampled scores) vs PyTorch.
    labels_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        own = "" if self.labels_agreement is None else f" (in-graph labels: {self.labels_agreement * 100:.4f}%)"
        diff = "" if self.compared == "labels" else f", max {self.compared} difference {self.max_abs_diff:.3g}"
        return (f"verified on {self.images} real image(s), {self.pixels} pixels: label agreement "
                f"{self.agreement * 100:.4f}%{own}{diff}")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def verify(images: Sequence[np.ndarray], exported: ScoreFn, reference: ScoreFn, exported_is_prob: bool,
           files: Sequence[str | Path] = (), min_agreement: float = 0.999, what: str = "export",
           fix: str = "export in fp32 (drop --fp16), try another --opset, or report the model",
           labels: LabelFn | None = None) -> VerifyReport:
    """Compare ``exported(image)`` with ``reference(image)`` (CxHxW each; reference = logits), and
    ``labels(image)`` (HxW, the graph's own label map, when it has one) with the reference's arg-max."""
    if not images:
        raise ExportError(f"No real image to verify the {what} on.",
                          fix="pass --images FOLDER (a few images like the ones it will see)")
    agree = total = own = 0
    diff = 0.0
    for im in images:
        got, ref = exported(im), reference(im)
        if labels is not None:
            own += int((labels(im) == ref.argmax(0)).sum())
        if got.shape != ref.shape:
            raise ExportError(f"The {what} returns shape {got.shape} for a {im.shape[1]}x{im.shape[0]} image; "
                              f"PyTorch returns {ref.shape}.", fix="report this as a bug (export graph)")
        if exported_is_prob:
            ref = _softmax(ref)
        diff = max(diff, float(np.abs(got - ref).max()))
        agree += int((got.argmax(0) == ref.argmax(0)).sum())
        total += ref[0].size
    rep = VerifyReport(len(images), total, agree / total, diff,
                       "probabilities" if exported_is_prob else "logits",
                       [list(im.shape[:2]) for im in images], [str(f) for f in files],
                       own / total if labels is not None else None)
    worst = min(rep.agreement, rep.labels_agreement if labels is not None else 1.0)
    if not np.isfinite(rep.max_abs_diff) or worst < min_agreement:
        raise ExportError(f"The {what} does not reproduce PyTorch: {rep.line()} "
                          f"(required: {min_agreement * 100:.2f}%).",
                          fix=fix)
    return rep
