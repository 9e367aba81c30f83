"""Inference: load a checkpoint, predict label maps / probabilities, draw them."""
from pixelwise.inference.predictor import Prediction, Segmenter

__all__ = ["Segmenter", "Prediction"]
