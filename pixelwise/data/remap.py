"""``pixelwise data remap``: merge, rename or drop classes, writing a new dataset folder.

* ``merge=["Car,Truck=Vehicle"]``: the listed classes become one class, placed where the first
  of them was; a NEW that names an existing class no option changes or drops joins it too
  (``Car,Truck=Sky``).
* ``rename=["Sky=sky"]``: a new name, same pixels.
* ``drop=["Pole"]``: pixels of the class become the ignore value (``drop_to="ignore"``) or join
  another class (``drop_to="Building"``).

Class ids are renumbered 0..K-1 in the original order; the ignore value is kept when it is
still >= K (else 255). Colours follow their classes. The source is only read.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pixelwise.data.convert import new_output_folder
from pixelwise.data.formats.base import parallel_map
from pixelwise.data.io import read_label, save_png
from pixelwise.data.pairing import paired_samples
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import ConfigError


@dataclass(frozen=True)
class Mapping:
    lut: np.ndarray  # old value (0..65535) -> new value
    names: list[str]
    colors: list[tuple[int, int, int]]
    ignore_index: int


def build_mapping(spec: DatasetSpec, merge: list[str] = (), rename: list[str] = (),
                  drop: list[str] = (), drop_to: str = "ignore") -> Mapping:
    """The old -> new class table; unknown class names are errors that list the known ones."""
    names = list(spec.names)

    def idx(name: str) -> int:
        name = name.strip()
        if name in names:
            return names.index(name)
        if name.isdigit() and int(name) < len(names):
            return int(name)
        raise ConfigError(f"Unknown class '{name}' (classes: {', '.join(names)}).", path=spec.source,
                          fix="use a class name or id from the dataset YAML")

    target = list(range(len(names)))  # old class -> representative old class (or -1 = drop)
    new_name = {i: n for i, n in enumerate(names)}
    given: dict[int, str] = {}  # class -> the option that already changed it

    def claim(k: int, option: str) -> None:
        if k in given:
            raise ConfigError(f"Class '{names[k]}' is changed twice ({given[k]} and {option}): which one "
                              "wins would be a guess.", path=spec.source,
                              fix="give each class in one --merge or --rename (merge then name the result)")
        given[k] = option

    for option in (*merge, *rename):
        if "=" not in option:
            raise ConfigError(f"'{option}' is not 'A,B=NEW' (--merge) or 'OLD=NEW' (--rename).",
                              fix="write e.g. --merge Car,Truck=Vehicle or --rename Sky=sky")
    named = {idx(x) for option in (*merge, *rename) for x in option.split("=", 1)[0].split(",") if x.strip()}
    untouched = set(range(len(names))) - named - {idx(d) for d in drop}
    for m in merge:
        left, new = m.split("=", 1)
        members = list(dict.fromkeys(idx(x) for x in left.split(",") if x.strip()))
        if new.strip() in names and names.index(new.strip()) in untouched:
            members.append(names.index(new.strip()))  # '--merge car,truck=sky' with a class sky: joins it
        for k in members:
            claim(k, f"--merge {m}")
        first = min(members)
        for k in members:
            target[k] = first
        new_name[first] = new.strip()
    for r in rename:
        old, new = r.split("=", 1)
        claim(idx(old), f"--rename {r}")
        new_name[target[idx(old)]] = new.strip()
    to_class = None if drop_to == "ignore" else idx(drop_to)
    for d in drop:
        k = idx(d)
        for j in range(len(target)):
            if target[j] == target[k] or j == k:
                target[j] = -1
    if to_class is not None and target[to_class] == -1:
        raise ConfigError(f"--drop-to class '{drop_to}' is itself dropped.", fix="choose a kept class")
    kept = sorted({t for t in target if t >= 0})
    seen_names = [new_name[k] for k in kept]
    twice = sorted({n for n in seen_names if seen_names.count(n) > 1})
    if twice:
        raise ConfigError(f"The remapped dataset would name two classes {', '.join(repr(n) for n in twice)}.",
                          path=spec.source, fix="rename to a name not in use, or merge the classes "
                          f"(--merge A,B={twice[0]})")
    new_id = {old: i for i, old in enumerate(kept)}
    ignore = spec.ignore_index if spec.ignore_index >= len(kept) else 255
    lut = np.arange(65536, dtype=np.int64)
    lut[:] = np.where(lut == spec.ignore_index, ignore, lut)
    for old, t in enumerate(target):
        if t >= 0:
            lut[old] = new_id[t]
        else:
            lut[old] = ignore if to_class is None else new_id[target[to_class]]
    return Mapping(lut, [new_name[k] for k in kept], [spec.colors[k] for k in kept], ignore)


@dataclass(frozen=True)
class _Job:
    mapping: Mapping
    out: Path


def _write(job: _Job, args: tuple) -> None:
    split, stem, image, label = args
    lab = read_label(label).astype(np.int64)
    new = job.mapping.lut[lab]
    save_png(job.out / split / "labels" / f"{stem}.png", new.astype(np.uint8 if new.max(initial=0) <= 255 else np.uint16),
             palette=job.mapping.colors if new.max(initial=0) <= 255 else None)
    shutil.copyfile(image, job.out / split / "images" / f"{stem}{image.suffix}")


def remap_dataset(data: str | Path, out: str | Path, merge: list[str] = (), rename: list[str] = (),
                  drop: list[str] = (), drop_to: str = "ignore", workers: int | None = None) -> Path:
    spec = DatasetSpec.load(data)
    mapping = build_mapping(spec, merge, rename, drop, drop_to)
    with new_output_folder(Path(out), spec.root) as out:
        jobs = []
        for name, split in spec.splits.items():
            (out / name / "images").mkdir(parents=True, exist_ok=True)
            (out / name / "labels").mkdir(parents=True, exist_ok=True)
            jobs += [(name, s.stem, s.image, s.label) for s in paired_samples(split)]
        list(parallel_map(_write, _Job(mapping, out), jobs, workers))
        desc = {"path": ".", **{n: n for n in spec.splits}, "images": "images", "labels": "labels",
                "ignore_index": mapping.ignore_index, "names": {i: n for i, n in enumerate(mapping.names)},
                "colors": {i: list(c) for i, c in enumerate(mapping.colors)}}
        (out / "dataset.yaml").write_text(yaml.safe_dump(desc, sort_keys=False))
        (out / "REMAP.md").write_text(f"# Remapped by pixelwise\n\n- Source: {spec.source}\n- merge: {list(merge)}\n"
                                      f"- rename: {list(rename)}\n- drop: {list(drop)} -> {drop_to}\n")
        return out / "dataset.yaml"
