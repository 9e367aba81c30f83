"""Models: a timm encoder + a decoder head, built by name from a registry (as timm does)."""
from pixelwise.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
