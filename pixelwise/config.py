"""One typed configuration object per run, saved as ``config.yaml`` in the run folder.

The defaults are the recipe we benchmark: chosen for a 2-core CPU and a 25-minute budget on
CamVid (see BENCHMARKS.md), and sensible on a GPU too.
"""
from __future__ import annotations

import dataclasses
import math
from numbers import Integral, Real
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
    def from_dict(cls, raw: dict[str, Any], source: str | Path | None = None) -> "TrainConfig":
        if not isinstance(raw, dict):
            raise ConfigError("A training configuration must be a mapping of options.", path=source,
                              fix="write 'option: value' lines, as the config.yaml of a run")
        raw = dict(raw)
        _refuse_unknown(raw, cls, "training option", source)
        model_raw = raw.pop("model", None) or {}
        aug_raw = raw.pop("augment", None)
        for what, sub, kind in (("model", model_raw, ModelConfig), ("augment", aug_raw or {}, AugmentConfig)):
            if not isinstance(sub, dict):
                raise ConfigError(f"'{what}:' must be a mapping of options.", path=source,
                                  fix=f"write '{what}:' followed by indented 'option: value' lines")
            _refuse_unknown(sub, kind, f"{what} option", source)
        for key in ("time_budget", "max_iters", "val_max_images"):
            if raw.get(key) == 0:  # 0 meant 'off' before these were checked (configs of earlier runs)
                raw[key] = None
        model = ModelConfig(**model_raw)
        aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug_raw.items()}) \
            if aug_raw else cls().augment
        return cls(model=model, augment=aug, **raw)

    def validate(self, resuming: bool = False) -> "TrainConfig":
        """Refuse values that cannot work (a zero batch or epoch count, a negative rate, an empty
        crop, a scale range upside down) before a folder is made or a model built, in one line each."""
        def need(ok: bool, option: str, value: Any, rule: str) -> None:
            if not ok:
                raise ConfigError(f"Training option {option} = {value!r}: it must be {rule}.",
                                  fix=f"set {option} to {rule} (see 'pixelwise train --help')")

        def whole(v: Any) -> bool:  # numpy integers too (a sweep over np.arange)
            return isinstance(v, Integral) and not isinstance(v, bool)

        def number(v: Any) -> bool:
            return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

        a = self.augment
        m = self.model
        if isinstance(m.pretrained, str) and m.pretrained.strip().lower() in ("none", "null", ""):
            m.pretrained = None  # as the CLI's '--pretrained none'
        if not resuming and m.pretrained is not None and m.pretrained not in ("offline", "timm", "hub", "imagenet") \
                and not Path(m.pretrained).is_file():  # a resumed run takes its weights from last.pt
            raise ConfigError(f"Pretrained weights file not found: {m.pretrained}.", path=m.pretrained,
                              fix="pass an existing .pth/.safetensors file, 'offline', 'timm' or none")
        need(whole(self.epochs) and self.epochs >= 1, "epochs", self.epochs, "a whole number >= 1")
        need(self.time_budget is None or (number(self.time_budget) and self.time_budget > 0), "time_budget (--time)",
             self.time_budget, "a number of minutes > 0")
        need(whole(self.batch_size) and self.batch_size >= 1, "batch_size (--batch)", self.batch_size, "a whole number >= 1")
        need(whole(self.workers) and self.workers >= -1, "workers", self.workers, "-1 (auto) or a whole number >= 0")
        need(whole(self.threads) and self.threads >= 0, "threads", self.threads, "0 (all cores) or a whole number >= 1")
        need(number(self.lr) and self.lr > 0, "lr", self.lr, "a number > 0")
        for name in ("encoder_lr_mult", "weight_decay", "momentum"):
            need(number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name), "a number >= 0")
        need(number(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label_smoothing",
             self.label_smoothing, "a number in [0, 1)")
        need(whole(self.warmup_iters) and self.warmup_iters >= 0, "warmup_iters", self.warmup_iters, "a whole number >= 0")
        need(whole(self.val_interval) and self.val_interval >= 1, "val_interval", self.val_interval, "a whole number >= 1")
        need(number(self.checkpoint_interval) and self.checkpoint_interval >= 0, "checkpoint_interval",
             self.checkpoint_interval, "a number of seconds >= 0 (0: after every step)")
        need(self.max_iters is None or (whole(self.max_iters) and self.max_iters >= 1), "max_iters",
             self.max_iters, "a whole number >= 1")
        need(self.val_max_images is None or (whole(self.val_max_images) and self.val_max_images >= 1),
             "val_max_images", self.val_max_images, "a whole number >= 1")
        need(self.optimizer in ("adamw", "sgd"), "optimizer", self.optimizer, "adamw or sgd")
        need(self.schedule in ("poly", "cosine", "constant"), "schedule", self.schedule, "poly, cosine or constant")
        need(self.loss in ("ce", "ce+dice"), "loss", self.loss, "ce or ce+dice")
        need(self.amp in ("auto", "on", "off"), "amp", self.amp, "auto, on or off")
        need(whole(m.freeze_stages) and m.freeze_stages >= 0, "freeze_stages (--freeze)", m.freeze_stages,
             "a whole number >= 0")
        crop = tuple(a.crop) if isinstance(a.crop, (list, tuple)) else ()
        need(len(crop) == 2 and all(whole(v) and v >= 1 for v in crop), "crop", a.crop,
             "two whole numbers >= 1 (height, width)")
        need(number(a.base_scale) and a.base_scale > 0, "base_scale", a.base_scale, "a number > 0")
        rng = tuple(a.scale_range) if isinstance(a.scale_range, (list, tuple)) else ()
        need(len(rng) == 2 and all(number(v) and v > 0 for v in rng) and rng[0] <= rng[1], "scale_range (--scale)",
             a.scale_range, "two numbers lo,hi with 0 < lo <= hi")
        for name in ("hflip", "photometric"):
            v = getattr(a, name)  # a boolean is a probability too (hflip: false)
            need((number(v) or isinstance(v, bool)) and 0 <= v <= 1, name, v, "a probability in [0, 1]")
        return self

    def save(self, path: str | Path) -> None:
        from pixelwise.data.io import atomic_write_bytes

        atomic_write_bytes(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"Configuration not found: {path}.", path=path,
                              fix="pass a run's config.yaml (e.g. runs/train/config.yaml)") from None
        except (UnicodeDecodeError, IsADirectoryError):
            raise ConfigError(f"{path} is not a text file, so not a configuration.", path=path,
                              fix="pass a run's config.yaml (e.g. runs/train/config.yaml)") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}".replace("\n", " "), path=path,
                              fix="correct the YAML syntax") from None
        return cls.from_dict(raw, source=path)


def _refuse_unknown(raw: dict[str, Any], kind: type, what: str, source: str | Path | None) -> None:
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise ConfigError(f"Unknown {what}(s): {', '.join(unknown)}.", path=source,
                          fix=f"valid ones: {', '.join(sorted(known))}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Integral) and not isinstance(obj, bool):  # numpy numbers: YAML cannot write them
        return int(obj)
    if isinstance(obj, Real) and not isinstance(obj, bool):
        return float(obj)
    return obj
