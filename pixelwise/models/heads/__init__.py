"""Decoder heads: each maps the encoder's feature list to class logits at some stride."""
