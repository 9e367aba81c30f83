"""Losses: cross-entropy with ignore index and class weights, optional soft Dice."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def class_weights_from_counts(counts: np.ndarray, power: float = 0.5, clip: float = 10.0) -> np.ndarray:
    """Inverse-frequency weights ``(median_freq / freq) ** power``, clipped.

    ``power=1`` is median-frequency balancing (SegNet's choice on CamVid); the default 0.5
    lifts rare classes (poles, signs, cyclists) without letting them swamp the common ones.
    Classes never seen get the largest weight.
    """
    freq = counts.astype(np.float64) / max(counts.sum(), 1)
    seen = freq > 0
    med = np.median(freq[seen]) if seen.any() else 1.0
    w = np.ones_like(freq)
    w[seen] = (med / freq[seen]) ** power
    w = np.clip(w, 1.0 / clip, clip)
    w[~seen] = w[seen].max() if seen.any() else 1.0
    return (w / w[seen].mean() if seen.any() else w).astype(np.float32)


class SegmentationLoss(nn.Module):
    def __init__(self, num_classes: int, ignore_index: int = 255, weight: torch.Tensor | None = None,
                 dice_weight: float = 0.0, label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss

    def dice(self, logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
        """Soft multi-class Dice over labelled pixels, averaged over classes present in the batch."""
        valid = target != self.ignore_index
        probs = logits.float().softmax(1) * valid.unsqueeze(1)
        onehot = F.one_hot(target.clamp(0, self.num_classes - 1), self.num_classes).permute(0, 3, 1, 2)
        onehot = onehot * valid.unsqueeze(1)
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        denom = probs.sum(dims) + onehot.sum(dims)
        present = onehot.sum(dims) > 0
        dice = 1 - (2 * inter + eps) / (denom + eps)
        return dice[present].mean() if present.any() else logits.sum() * 0
