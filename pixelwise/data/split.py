"""``pixelwise data split``: a reproducible train/val(/test) split into a new folder.

The same (files, fractions, seed) always give the same split: samples are sorted by name
before a seeded shuffle. With ``stratify=True`` every class's image presence is spread over the
splits in proportion to the fractions (greedy iterative stratification: images holding the
rarest classes are placed first, each into the split that most lacks its rarest class), so a
rare class cannot end up missing from val. Images are copied; the source is not touched.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from pixelwise.data.convert import new_output_folder
from pixelwise.data.formats.base import parallel_map
from pixelwise.data.io import read_label
from pixelwise.data.pairing import Sample, paired_samples
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import ConfigError

SPLIT_NAMES = ("train", "val", "test")


def _presence(n: int, s: Sample) -> np.ndarray:
    lab = read_label(s.label)
    v = np.unique(lab)
    p = np.zeros(n, bool)
    p[v[v < n].astype(np.int64)] = True
    return p


def assign(presence: np.ndarray | None, fractions: list[float], seed: int, n: int) -> np.ndarray:
    """Split index of each of ``n`` samples (presence: n x classes booleans, for stratifying)."""
    rng = np.random.default_rng(seed)
    fr = np.asarray(fractions, np.float64) / sum(fractions)
    order = rng.permutation(n)
    if presence is None:
        bounds = np.round(np.cumsum(fr) * n).astype(int)
        out = np.empty(n, np.int64)
        start = 0
        for k, b in enumerate(bounds):
            out[order[start:b]] = k
            start = b
        return out
    freq = presence.sum(0).astype(np.float64)
    need = np.outer(fr, freq)  # wanted images with each class, per split
    cap = fr * n  # wanted images per split
    rarity = np.where(presence, freq[None, :], np.inf).min(1)
    order = order[np.argsort(rarity[order], kind="stable")]
    out = np.empty(n, np.int64)
    for i in order:
        cls = np.flatnonzero(presence[i])
        if len(cls):
            rare = cls[np.argmin(freq[cls])]
            score = need[:, rare] + 1e-3 * cap
        else:
            score = cap.copy()
        score[cap <= 0] = -np.inf
        k = int(np.argmax(score))
        out[i] = k
        need[k, cls] -= 1
        cap[k] -= 1
    return out


def output_stems(pooled: list[tuple[Sample, str]]) -> list[str]:
    """A unique file stem per pooled sample: its own, or ``<source split>_<stem>`` where splits
    reuse a name (train/0001.png and val/0001.png), so that no copy lands on another."""
    count = Counter(s.stem for s, _ in pooled)
    stems = [s.stem if count[s.stem] == 1 else f"{split}_{s.stem}" for s, split in pooled]
    taken: set[str] = set()
    out = []
    for (s, _), stem in zip(pooled, stems):
        unique, n = stem, 1
        while unique in taken or (stem != s.stem and unique in count):  # nor another file's own name
            n += 1
            unique = f"{stem}_{n}"
        taken.add(unique)
        out.append(unique)
    return out


def split_dataset(data: str | Path, out: str | Path, fractions: list[float] | tuple[float, ...] = (0.8, 0.2),
                  seed: int = 0, stratify: bool = False, source_split: str | None = None,
                  workers: int | None = None) -> Path:
    """Write ``out/{train,val[,test]}/{images,labels}`` and ``out/dataset.yaml``; returns the YAML."""
    if not 2 <= len(fractions) <= 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"Fractions {list(fractions)} are not 2 or 3 non-negative numbers.",
                          fix="use e.g. --fractions 0.8,0.2 or 0.7,0.15,0.15")
    spec = DatasetSpec.load(data)
    splits = [source_split] if source_split else list(spec.splits)
    pooled = sorted(((s, name) for name in splits for s in paired_samples(spec.split(name))),
                    key=lambda p: (p[0].stem, str(p[0].image)))
    samples = [s for s, _ in pooled]
    stems = output_stems(pooled)
    presence = None
    if stratify:
        presence = np.stack(list(parallel_map(_presence, spec.num_classes, samples, workers)))
    which = assign(presence, list(fractions), seed, len(samples))
    with new_output_folder(Path(out), spec.root) as out:
        names = SPLIT_NAMES[: len(fractions)]
        for s, k, stem in zip(samples, which, stems):
            d = out / names[k]
            (d / "images").mkdir(parents=True, exist_ok=True)
            (d / "labels").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.image, d / "images" / f"{stem}{s.image.suffix}")
            shutil.copyfile(s.label, d / "labels" / f"{stem}{s.label.suffix}")
        desc = {"path": ".", **{n: n for n in names if (out / n).is_dir()}, "images": "images",
                "labels": "labels", "ignore_index": spec.ignore_index,
                "names": {i: n for i, n in enumerate(spec.names)},
                "colors": {i: list(c) for i, c in enumerate(spec.colors)}}
        (out / "dataset.yaml").write_text(yaml.safe_dump(desc, sort_keys=False))
        renamed = [f"- {s.image} -> {names[k]}/images/{stem}{s.image.suffix}"
                   for s, k, stem in zip(samples, which, stems) if stem != s.stem]
        (out / "SPLIT.md").write_text(f"# Split by pixelwise\n\n- Source: {spec.source}\n- Fractions: "
                                      f"{list(fractions)}; seed {seed}; stratified: {stratify}\n"
                                      f"- Images: {len(samples)}\n"
                                      + ("\nRenamed (their name is also used in another source split):\n\n"
                                         + "\n".join(renamed) + "\n" if renamed else ""))
        return out / "dataset.yaml"
