"""One typed configuration object per run, saved as ``config.yaml`` in the run folder.

The defaults are the recipe we benchmark: chosen for a 2-core CPU and a 25-minute budget on
CamVid (see BENCHMARKS.md), and sensible on a GPU too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelwise.data.transforms import AugmentConfig
from pixelwise.errors import ConfigError


@dataclass
class ModelConfig:
    arch: str = "fpn_lite"
    encoder: str = "efficientnet_lite0"
    pretrained: str | None = "offline"  # 'offline' | 'timm' | path | None
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    freeze_stages: int = 2  # stem + first stages of the encoder stay frozen (generic edges; saves backward time)


@dataclass
class TrainConfig:
    data: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        base_scale=1.0, scale_range=(0.5, 1.5), crop=(288, 384)))
    epochs: int = 40
    time_budget: float | None = None  # minutes of training; the schedule is fitted to it
    batch_size: int = 8
    workers: int = -1  # -1: auto
    optimizer: str = "adamw"
    lr: float = 2e-3
    encoder_lr_mult: float = 0.25
    weight_decay: float = 1e-2
    momentum: float = 0.9
    schedule: str = "poly"
    warmup_iters: int = 30
    loss: str = "ce"  # 'ce' | 'ce+dice'
    class_weights: str | list[float] | None = "auto"  # 'auto' from label counts, list, or None
    label_smoothing: float = 0.0
    amp: str = "auto"  # 'auto' | 'on' | 'off'
    device: str = "auto"
    threads: int = 0  # 0: all cores
    channels_last: bool = True
    seed: int = 0
    val_interval: int = 5  # epochs between validations (and always at the end)
    checkpoint_interval: float = 120.0  # seconds between mid-epoch 'last' checkpoints
    project: str = "runs"
    name: str = "train"
    exist_ok: bool = False
    max_iters: int | None = None  # cap (tests, smoke runs)
    val_max_images: int | None = None

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"Unknown training option(s): {', '.join(sorted(unknown))}.",
                              fix=f"valid options: {', '.join(sorted(known))}")
        model = ModelConfig(**raw.pop("model", {}) or {})
        aug_raw = raw.pop("augment", None)
        aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug_raw.items()}) \
            if aug_raw else cls().augment
        return cls(model=model, augment=aug, **raw)

    def save(self, path: str | Path) -> None:
        from pixelwise.data.io import atomic_write_bytes

        atomic_write_bytes(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
