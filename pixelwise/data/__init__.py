"""Data: dataset description -> file pairs -> checks -> augmented tensors."""
from pixelwise.data.spec import DatasetSpec, SplitSpec

__all__ = ["DatasetSpec", "SplitSpec"]
