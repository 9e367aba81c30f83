"""Contender 2: segmentation-models-pytorch Unet + EfficientNet-Lite0 in a plain PyTorch loop.

What a user writing their own loop would do: the same ImageNet weights as pixelwise's default
(the offline EfficientNet-Lite0 package, mapped onto timm's layout and loaded into SMP's
timm-universal encoder), AdamW, a poly schedule over the number of epochs that fits the budget
(estimated from the first iterations), random scale 0.5-2.0 / crop 360x480 / horizontal flip,
cross-entropy with ignore_index, everything trainable, NCHW, fp32. Evaluation on whole 360x480
images (padded to a multiple of 32, logits cropped back).
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .common import SMOKE_VAL_IMAGES, metrics_record, score, val_split

SETTINGS = {
    "model": "smp.Unet(encoder_name='tu-efficientnet_lite0', encoder_weights=None) + offline Lite0 weights",
    "optimizer": "AdamW", "lr": 1e-3, "weight_decay": 1e-2, "schedule": "poly(0.9) over fitted epochs",
    "batch_size": 8, "crop": [360, 480], "scale_range": [0.5, 2.0], "hflip": 0.5,
    "loss": "CrossEntropy(ignore_index)", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    "threads": 2, "workers": 1, "calibration_iters": 5,
}


class CamVidTrain(Dataset):
    """``<split>/images/*.jpg`` + ``<split>/labels/*.png`` with random scale, pad, crop and flip."""

    def __init__(self, pairs: list[tuple[Path, Path]], crop: tuple[int, int], scale: tuple[float, float],
                 ignore: int):
        self.pairs, self.crop, self.scale, self.ignore = pairs, crop, scale, ignore

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        img_p, lab_p = self.pairs[i]
        img = cv2.cvtColor(cv2.imread(str(img_p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        lab = cv2.imread(str(lab_p), cv2.IMREAD_UNCHANGED)
        s = random.uniform(*self.scale)
        h, w = lab.shape
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
        ch, cw = self.crop
        ph, pw = max(0, ch - nh), max(0, cw - nw)
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            lab = cv2.copyMakeBorder(lab, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore)
        y = random.randint(0, lab.shape[0] - ch)
        x = random.randint(0, lab.shape[1] - cw)
        img, lab = img[y:y + ch, x:x + cw], lab[y:y + ch, x:x + cw]
        if random.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        lab = torch.from_numpy(np.ascontiguousarray(lab).astype(np.int64))
        return img, lab


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def build_model(num_classes: int) -> torch.nn.Module:
    import segmentation_models_pytorch as smp
    import timm

    from pixelwise.models.pretrained import _lite0_source, map_lite0_state_dict

    model = smp.Unet(encoder_name="tu-efficientnet_lite0", encoder_weights=None, classes=num_classes)
    inner = model.encoder.model  # timm features_only EfficientNet: timm's parameter names
    state = map_lite0_state_dict(_lite0_source(), timm.create_model("efficientnet_lite0", pretrained=False))
    own = inner.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < 0.9 * len(own):
        raise RuntimeError(f"pretrained Lite0 weights fit only {len(usable)}/{len(own)} SMP encoder tensors")
    missing, _ = inner.load_state_dict(usable, strict=False)
    model.loaded_tensors = (len(usable), len(own), len(missing))
    return model


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - 0.5) / 0.5


def run(data: str, minutes: float, workdir: Path, smoke: bool = False) -> dict:
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.data.pairing import paired_samples

    torch.set_num_threads(SETTINGS["threads"])
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    spec = DatasetSpec.load(data)
    pairs = [(Path(s.image), Path(s.label)) for s in paired_samples(spec.split("train"))]
    ignore = spec.ignore_index
    ds = CamVidTrain(pairs, tuple(SETTINGS["crop"]), tuple(SETTINGS["scale_range"]), ignore)
    bs = SETTINGS["batch_size"]
    loader = DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True, num_workers=SETTINGS["workers"],
                        persistent_workers=True, worker_init_fn=_seed_worker,
                        generator=torch.Generator().manual_seed(0))
    model = build_model(spec.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=SETTINGS["lr"], weight_decay=SETTINGS["weight_decay"])
    budget = minutes * 60.0
    per_epoch = len(loader)
    total_iters = None  # fixed after calibration
    epochs_planned = None
    it, images, elapsed, epoch = 0, 0, 0.0, 0
    cal_start = None
    t0 = time.time()
    stop = False
    model.train()
    while not stop:
        t_prev = time.time()
        for x, y in loader:
            if total_iters is not None:
                f = max(0.0, 1.0 - it / total_iters) ** 0.9
                for g in opt.param_groups:
                    g["lr"] = SETTINGS["lr"] * f
            logits = model(_normalize(x))
            loss = F.cross_entropy(logits, y, ignore_index=ignore)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            images += x.shape[0]
            now = time.time()
            elapsed += now - t_prev
            t_prev = now
            if it == 1:
                cal_start = elapsed  # the first step pays one-off costs (allocations, worker start)
            elif total_iters is None and it == 1 + SETTINGS["calibration_iters"]:
                step = (elapsed - cal_start) / SETTINGS["calibration_iters"]
                epochs_planned = max(1, math.floor(budget / (step * per_epoch)))
                total_iters = epochs_planned * per_epoch
            if elapsed >= budget or (total_iters is not None and it >= total_iters):
                stop = True
                break
        epoch += 1
    train_seconds = elapsed
    wall = time.time() - t0

    model.eval()

    @torch.no_grad()
    def predict(_path: Path, image: np.ndarray) -> np.ndarray:
        x = _normalize(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None])
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        x = F.pad(x, (0, pw, 0, ph))
        return model(x)[0, :, :h, :w].argmax(0).numpy()

    max_val = SMOKE_VAL_IMAGES if smoke else None
    m = score(data, predict, max_val)
    torch.save(model.state_dict(), workdir / "smp_unet_lite0.pt")
    out = metrics_record(m, val_split(data, max_val)[2])
    loaded, own, _ = model.loaded_tensors
    out.update(epochs=round(images / len(ds), 2), epochs_reported=epoch, epochs_planned=epochs_planned,
               iterations=it, batch_size=bs, images_seen=images, train_seconds=round(train_seconds, 1),
               train_img_s=round(images / train_seconds, 3), wall_seconds=round(wall, 1),
               settings={**SETTINGS, "pretrained_tensors_loaded": f"{loaded}/{own}"})
    return out
