"""The training loop. ``train()`` is what ``pixelwise train`` calls.

Design choices for a CPU-first default that also scales to a GPU:
* images travel from workers as uint8 and are normalised in the main process (4x less copying);
* channels_last on the CPU (about 1.3x faster convolutions with oneDNN);
* the encoder's stem and first stages are frozen (their backward pass is the costliest part at
  high resolution and their pretrained features are generic);
* with ``time_budget`` the total iteration count is fitted to the measured step time, so the
  learning-rate schedule ends exactly when the budget does;
* ``last.pt`` is written atomically at every epoch end and every ``checkpoint_interval`` seconds,
  with the sampler position and RNG states, so ``--resume`` continues where a killed run stopped.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pixelwise import __version__
from pixelwise.config import TrainConfig
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.io import atomic_write_bytes, read_label
from pixelwise.data.samples import binary_convert_fix, foreground_is_ignored
from pixelwise.data.spec import DatasetSpec
from pixelwise.data.transforms import train_transform
from pixelwise.engine.callbacks import ResultsLogger
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.evaluator import evaluate, normalize_batch
from pixelwise.engine.losses import SegmentationLoss, class_weights_from_counts
from pixelwise.engine.run_lock import RunLock
from pixelwise.engine.sampler import EpochSampler, SeededAugmentDataset
from pixelwise.engine.schedule import lr_factor
from pixelwise.errors import ConfigError, DatasetError, ResumeError
from pixelwise.models.registry import create_model
from pixelwise.utils import next_run_dir, seed_everything, select_device, set_threads


@dataclass
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    best_miou: float
    epochs: int
    iterations: int


def label_counts(ds: SegmentationDataset) -> tuple[np.ndarray, int]:
    """Pixel count per class over a split, and of pixels outside every class (the ignore value);
    reads labels only, one at a time."""
    n = ds.spec.num_classes
    counts = np.zeros(n, dtype=np.int64)
    other = 0
    for s in ds.samples:
        lab = read_label(s.label)
        c = np.bincount(lab.ravel().astype(np.int64), minlength=n)
        counts += c[:n]
        other += int(c[n:].sum())
    return counts, other


def refuse_ignored_foreground(spec: DatasetSpec, counts: np.ndarray, ignored: int) -> None:
    """0/255 binary masks described as masks train a model that has never seen its foreground
    (255 is the ignore value) and score it n/a: stop before training, with the conversion."""
    if foreground_is_ignored(spec, counts > 0, ignored > 0):
        raise DatasetError(f"Class 1 '{spec.names[1]}' has no pixel in the training labels of {spec.source}, "
                           f"while {ignored} pixels hold 255, the ignore value.", path=spec.source,
                           fix=binary_convert_fix(spec.source or spec.root))


def freeze_encoder_stages(model: torch.nn.Module, stages: int) -> list[torch.nn.Module]:
    """Freeze the stem and the first ``stages`` block groups; returns the frozen modules."""
    if stages <= 0:
        return []
    inner = model.encoder.model
    modules = [m for m in (getattr(inner, "conv_stem", None), getattr(inner, "bn1", None),
                           getattr(inner, "stem", None), getattr(inner, "conv1", None)) if m is not None]
    blocks = getattr(inner, "blocks", None) or getattr(inner, "stages", None)
    if blocks is not None:
        modules += [blocks[i] for i in range(min(stages, len(blocks)))]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
    return modules


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Two learning rates (pretrained encoder slower) and no weight decay on norms/biases."""
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.lr * (cfg.encoder_lr_mult if name.startswith("encoder.") else 1.0)
        wd = 0.0 if p.ndim <= 1 else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    params = [{"params": ps, "lr": lr, "initial_lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    raise ConfigError(f"Unknown optimizer '{cfg.optimizer}'.", fix="use adamw or sgd")


def _rng_state() -> dict[str, Any]:
    import random

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _auto_workers(requested: int) -> int:
    if requested >= 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 4 else min(8, cores // 2)


def train(data: str | Path | None = None, resume: str | Path | bool | None = None,
          config: TrainConfig | None = None, progress: bool = True, stop_after: int | None = None,
          **overrides: Any) -> TrainResult:
    """Train a segmentation model.

    ``train("data.yaml", epochs=20, model={"arch": "unet"})`` — keyword overrides apply on top of
    ``config`` (or the defaults). ``resume`` is a ``last.pt`` path or a run folder.
    ``stop_after`` stops after that many iterations, as a preempted job would (the schedule is
    unchanged, so a later ``resume`` finishes the same run).
    """
    ckpt = None
    if resume:
        last = Path(resume)
        if last.is_dir():
            last = last / "last.pt"
        if not last.exists():
            raise ResumeError(f"Nothing to resume: {last} does not exist.", path=last,
                              fix="pass the run folder or last.pt of an interrupted run, or train "
                                  "without --resume")
        ckpt = load_checkpoint(last)
        if "optimizer" not in ckpt:
            raise ResumeError(f"{last} holds no training state (it is a weights-only checkpoint).",
                              path=last, fix="resume from the run's last.pt")
        if ckpt.get("finished"):
            raise ResumeError(f"The run of {last} already finished ({ckpt['epoch']} epochs).", path=last,
                              fix="start a new run (optionally from these weights) instead of --resume")
        cfg = TrainConfig.from_dict(ckpt["config"])
        run_dir = last.parent
    else:
        cfg = config or TrainConfig()
        if data is not None:
            cfg.data = str(data)
        for key, value in overrides.items():
            if key in ("model", "augment") and isinstance(value, dict):
                sub = getattr(cfg, key)
                for k, v in value.items():
                    if not hasattr(sub, k):
                        raise ConfigError(f"Unknown {key} option '{k}'.", fix="see 'pixelwise train --help'")
                    setattr(sub, k, tuple(v) if isinstance(v, list) else v)
            elif hasattr(cfg, key):
                setattr(cfg, key, value)
            else:
                raise ConfigError(f"Unknown training option '{key}'.", fix="see 'pixelwise train --help'")
        if not cfg.data:
            raise ConfigError("No dataset given.", fix="pass the dataset YAML, e.g. 'pixelwise train data.yaml'")
        run_dir = next_run_dir(cfg.project, cfg.name, cfg.exist_ok)
    return Trainer(cfg, run_dir, ckpt, progress).fit(stop_after)


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, ckpt: dict | None, progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg.validate(resuming=ckpt is not None), Path(run_dir), progress
        self.resume_ckpt = ckpt
        self.threads = set_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = select_device(cfg.device)
        self.spec = DatasetSpec.load(cfg.data)
        self.train_ds = SegmentationDataset(self.spec, "train")
        self.val_ds = SegmentationDataset(self.spec, "val") if "val" in self.spec.splits else None
        self.class_counts = self._train_class_counts()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.run_dir).acquire()  # before anything in the folder is written
        if ckpt is not None:  # writes cut short by a kill (the real files are intact); never a live run's
            for stray in self.run_dir.glob(".*.tmp"):
                stray.unlink()
        try:
            self._setup(cfg, ckpt)
        except BaseException:
            self.lock.release()  # a failed start leaves the folder free for the next attempt
            raise

    def _setup(self, cfg: TrainConfig, ckpt: dict | None) -> None:
        """Everything after the run folder is claimed: config, model, optimiser, loader, state."""
        cfg.save(self.run_dir / "config.yaml")
        counts_file = self.run_dir / "class_counts.json"
        if not counts_file.exists():
            atomic_write_bytes(counts_file, json.dumps({"names": self.spec.names,
                                                        "counts": self.class_counts.tolist()}).encode())

        m = cfg.model
        self.model = create_model(m.arch, m.encoder, self.spec.num_classes,
                                  pretrained=None if ckpt else m.pretrained, head_kwargs=m.head_kwargs)
        if ckpt:  # the resumed model keeps the normalisation of its pretrained weights
            self.model.mean = tuple(ckpt["model_spec"]["mean"])
            self.model.std = tuple(ckpt["model_spec"]["std"])
            self.model.spec.update(mean=list(self.model.mean), std=list(self.model.std))
        self.frozen = freeze_encoder_stages(self.model, m.freeze_stages)
        self.channels_last = cfg.channels_last and self.device.type == "cpu"
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss_fn = SegmentationLoss(self.spec.num_classes, self.spec.ignore_index,
                                        weight=self._class_weights(),
                                        dice_weight=1.0 if cfg.loss == "ce+dice" else 0.0,
                                        label_smoothing=cfg.label_smoothing).to(self.device)
        self.workers = _auto_workers(cfg.workers)
        self.sampler = EpochSampler(len(self.train_ds), min(cfg.batch_size, len(self.train_ds)), cfg.seed)
        aug_ds = SeededAugmentDataset(self.train_ds, train_transform(cfg.augment, self.spec.ignore_index),
                                      cfg.seed)
        self.loader = DataLoader(aug_ds, batch_sampler=self.sampler, num_workers=self.workers,
                                 persistent_workers=self.workers > 0, pin_memory=self.device.type == "cuda",
                                 prefetch_factor=4 if self.workers > 0 else None,
                                 # own generator: starting an epoch must not draw from the global RNG
                                 # (dropout's), or a mid-epoch resume would drift from the original
                                 generator=torch.Generator().manual_seed(cfg.seed))
        self.logger = ResultsLogger(self.run_dir, resume=ckpt is not None)
        # state
        self.epoch = 0
        self.batch_in_epoch = 0
        self.iteration = 0
        self.best_miou = -1.0
        self.elapsed = 0.0
        self.total_iters = self._planned_iters()
        self.loss_sum, self.loss_n = 0.0, 0
        self.current_lr = cfg.lr
        if ckpt:
            self._restore(ckpt)

    # ------------------------------------------------------------------ setup helpers
    def _amp_dtype(self):
        if self.cfg.amp == "off" or self.device.type == "cpu":
            return None  # CPU autocast is slower than fp32 on AVX2 machines
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if self.cfg.amp == "on" else None

    def _class_weights(self) -> torch.Tensor | None:
        cw = self.cfg.class_weights
        if cw in (None, "none", False):
            return None
        if isinstance(cw, (list, tuple)):
            if len(cw) != self.spec.num_classes:
                raise ConfigError(f"{len(cw)} class weights for {self.spec.num_classes} classes.",
                                  fix="give one weight per class or use class_weights: auto")
            return torch.tensor(cw, dtype=torch.float32)
        return torch.from_numpy(class_weights_from_counts(self.class_counts))

    def _train_class_counts(self) -> np.ndarray:
        """Pixels per class in the training labels (kept in the run folder, read back on resume),
        checked for an ignored foreground before the run folder is written."""
        cache = self.run_dir / "class_counts.json"
        if cache.exists():
            return np.array(json.loads(cache.read_text())["counts"], dtype=np.int64)
        counts, ignored = label_counts(self.train_ds)
        refuse_ignored_foreground(self.spec, counts, ignored)
        absent = [f"{c} '{self.spec.names[c]}'" for c in np.flatnonzero(counts == 0)]
        if absent:
            many = len(absent) > 1
            warnings.warn(f"class{'es' if many else ''} {', '.join(absent)} of {self.spec.source} "
                          f"never appear{'' if many else 's'} in the training labels: the model cannot learn "
                          f"to predict {'them' if many else 'it'} (see 'pixelwise data check').", stacklevel=2)
        return counts

    def _planned_iters(self) -> int:
        per_epoch = self.sampler.batches_per_epoch()
        total = per_epoch * self.cfg.epochs
        if self.cfg.max_iters:
            total = min(total, self.cfg.max_iters)
        return max(1, total)

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, with_state: bool) -> dict[str, Any]:
        p = {"model": self.model.state_dict(), "model_spec": self.model.spec,
             "dataset": {"names": self.spec.names, "colors": [list(c) for c in self.spec.colors],
                         "ignore_index": self.spec.ignore_index, "description": self.spec.to_dict()},
             "epoch": self.epoch, "iteration": self.iteration, "best_miou": self.best_miou,
             "config": self.cfg.to_dict(), "version": __version__,
             "train_size": list(self.cfg.augment.crop)}
        if with_state:
            p.update(optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
                     batch_in_epoch=self.batch_in_epoch, total_iters=self.total_iters,
                     elapsed=self.elapsed, rng=_rng_state(),
                     loss_sum=self.loss_sum, loss_n=self.loss_n, finished=False)
        return p

    def save_last(self, finished: bool = False) -> None:
        p = self._payload(with_state=True)
        p["finished"] = finished
        save_checkpoint(self.run_dir / "last.pt", p)

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.iteration = ckpt["epoch"], ckpt["iteration"]
        self.batch_in_epoch = ckpt["batch_in_epoch"]
        self.best_miou, self.total_iters = ckpt["best_miou"], ckpt["total_iters"]
        self.elapsed = ckpt["elapsed"]
        self.loss_sum, self.loss_n = ckpt.get("loss_sum", 0.0), ckpt.get("loss_n", 0)
        _set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ loop
    def _set_lr(self) -> float:
        f = lr_factor(self.iteration, self.total_iters, self.cfg.warmup_iters, self.cfg.schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f
        self.current_lr = self.cfg.lr * f
        return self.current_lr

    def _train_mode(self) -> None:
        self.model.train()
        for m in self.frozen:  # frozen layers keep their pretrained BatchNorm statistics
            m.eval()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        x = normalize_batch(images, self.model.mean, self.model.std, self.device, self.channels_last)
        y = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at iteration {self.iteration}; "
                                     "lower the learning rate (--lr)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def _fit_budget(self, step_seconds: float) -> None:
        """Turn the time budget into an iteration count, once, from the measured step time."""
        budget = self.cfg.time_budget * 60.0
        per_epoch = self.sampler.batches_per_epoch()
        # reserve time for the periodic validations
        val_cost = 0.0
        if self.val_ds is not None:
            n_val = min(len(self.val_ds), self.cfg.val_max_images or len(self.val_ds))
            val_cost = n_val * step_seconds / max(1, self.sampler.batch_size) * 1.2
        remaining = budget - self.elapsed
        iters_left = remaining / step_seconds
        epochs = (self.iteration + iters_left) / per_epoch
        n_vals = max(1, math.ceil(epochs / max(1, self.cfg.val_interval)))
        iters_left = max(1.0, (remaining - n_vals * val_cost) / step_seconds)
        self.total_iters = max(self.iteration + 1, int(self.iteration + iters_left))
        if self.cfg.max_iters:
            self.total_iters = min(self.total_iters, self.cfg.max_iters)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        try:
            return self._fit(stop_after)
        finally:
            self.lock.release()

    def _fit(self, stop_after: int | None = None) -> TrainResult:
        cfg = self.cfg
        per_epoch = self.sampler.batches_per_epoch()
        calibrate_at = self.iteration + 12 if (cfg.time_budget and self.iteration < 12) else None
        if self.resume_ckpt is None:
            self.save_last()  # from the first second on, there is something to resume
        last_ckpt_time = time.time()
        tic_cal = None
        stopping = False
        while self.iteration < self.total_iters and not stopping:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self._train_mode()
            epoch_end = min(per_epoch, self.batch_in_epoch + (self.total_iters - self.iteration))
            bar = tqdm(total=epoch_end, initial=self.batch_in_epoch, disable=not self.progress,
                       desc=f"epoch {self.epoch + 1}", dynamic_ncols=True, leave=True)
            t_prev = time.time()
            epoch_start_iter, epoch_start_elapsed = self.iteration, self.elapsed
            for images, labels, _ in self.loader:
                lr = self._set_lr()
                loss = self.step(images, labels)
                self.loss_sum += loss
                self.loss_n += 1
                self.iteration += 1
                self.batch_in_epoch += 1
                now = time.time()
                self.elapsed += now - t_prev  # wall clock, data waits included
                t_prev = now
                if calibrate_at is not None:
                    if self.iteration == calibrate_at - 10:
                        tic_cal = now
                    elif self.iteration == calibrate_at and tic_cal is not None:
                        self._fit_budget((now - tic_cal) / 10)
                        calibrate_at = None
                        bar.total = min(per_epoch, self.batch_in_epoch + self.total_iters - self.iteration)
                eta = (self.total_iters - self.iteration) * self.elapsed / max(1, self.iteration)
                bar.set_postfix(loss=f"{self.loss_sum / self.loss_n:.3f}", lr=f"{lr:.2e}",
                                eta=f"{int(eta // 60)}m{int(eta % 60):02d}s")
                bar.update(1)
                if now - last_ckpt_time > cfg.checkpoint_interval:
                    self.save_last()
                    last_ckpt_time = time.time()
                if cfg.time_budget and self.elapsed >= cfg.time_budget * 60.0:
                    self.total_iters = self.iteration  # hard stop mid-epoch: the budget is spent
                if stop_after is not None and self.iteration >= stop_after:
                    stopping = True
                    break
                if self.iteration >= self.total_iters or self.batch_in_epoch >= per_epoch:
                    break
            bar.close()
            epoch_done = self.batch_in_epoch >= per_epoch or self.iteration >= self.total_iters
            if not epoch_done:
                if stopping:
                    self.save_last()
                    break
                continue
            self.epoch += 1
            self.batch_in_epoch = 0
            if cfg.time_budget and self.iteration < self.total_iters:
                # re-fit to the step time measured over this epoch (machines get busier or freer)
                done = self.iteration - epoch_start_iter
                if done >= 5:
                    self._fit_budget((self.elapsed - epoch_start_elapsed) / done)
                if self.elapsed >= cfg.time_budget * 60.0:
                    self.total_iters = self.iteration  # hard stop: the budget is spent
            finished = self.iteration >= self.total_iters
            row = {"epoch": self.epoch, "iteration": self.iteration,
                   "train_loss": round(self.loss_sum / max(1, self.loss_n), 5),
                   "lr": f"{self.current_lr:.3e}",
                   "seconds": round(self.elapsed, 1)}
            self.loss_sum, self.loss_n = 0.0, 0
            if self.val_ds is not None and (finished or self.epoch % cfg.val_interval == 0):
                tv = time.time()
                metrics = evaluate(self.model, self.val_ds, self.device, max_images=cfg.val_max_images,
                                   progress=self.progress, channels_last=self.channels_last)
                self.elapsed += time.time() - tv
                row.update(val_mIoU=round(metrics.miou * 100, 3), val_mAcc=round(metrics.macc * 100, 3),
                           val_aAcc=round(metrics.aacc * 100, 3))
                if metrics.miou > self.best_miou:
                    self.best_miou = metrics.miou
                    save_checkpoint(self.run_dir / "best.pt", self._payload(with_state=False))
                if self.progress:
                    tqdm.write(f"epoch {self.epoch}: val mIoU {metrics.miou * 100:.2f}")
            elif self.val_ds is None:
                save_checkpoint(self.run_dir / "best.pt", self._payload(with_state=False))
            self.logger.log(row)
            self.save_last(finished=finished)
            last_ckpt_time = time.time()
        if not stopping and not (self.run_dir / "best.pt").exists():
            save_checkpoint(self.run_dir / "best.pt", self._payload(with_state=False))
        return TrainResult(self.run_dir, self.run_dir / "best.pt", self.run_dir / "last.pt",
                           self.best_miou, self.epoch, self.iteration)
