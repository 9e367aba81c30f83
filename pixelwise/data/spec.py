"""A dataset is a description, not code (as in MMSegmentation).

A small YAML file names the root, the splits, the image and label folders, the classes, their
colours and the ignore value. Everything else in pixelwise reads this object, so a user never
subclasses a Dataset to train on their own images.

Two layouts are accepted for splits::

    # short: <root>/<split>/<images>/ and <root>/<split>/<labels>/
    path: .
    train: train
    val: val
    images: images
    labels: labels

    # explicit: any folders, relative to the root
    train: {images: img/train, labels: ann/train}
"""
from __future__ import annotations

import warnings
from numbers import Integral, Real
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Sequence

import yaml

from pixelwise.errors import ConfigError, DatasetError

SPLITS = ("train", "val", "test")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
LABEL_EXTS = (".png", ".tif", ".tiff", ".gif", ".bmp")


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """PASCAL VOC's bit-interleaved palette: distinct colours for any number of classes."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


@dataclass(frozen=True)
class SplitSpec:
    """Where one split's images and labels live, and how their names pair up."""

    name: str
    images: Path
    labels: Path | None
    label_suffix: str = ""  # e.g. "_manual1" when labels are named <stem>_manual1.png
    image_suffix: str = ""  # e.g. "_training" when images are named <stem>_training.tif


@dataclass
class DatasetSpec:
    """Everything pixelwise needs to know about a labelled dataset."""

    root: Path
    names: list[str]
    splits: dict[str, SplitSpec]
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    ignore_index: int = 255
    format: str = "masks"
    source: Path | None = None  # the YAML file this came from, for messages

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("The dataset has no classes.", path=self.source,
                              fix="add a 'names:' list or mapping of class names to the YAML")
        if not self.colors:
            self.colors = default_palette(len(self.names))
        if len(self.colors) != len(self.names):
            raise ConfigError(
                f"{len(self.colors)} colours for {len(self.names)} classes.", path=self.source,
                fix="give one [r, g, b] colour per class under 'colors:' or remove 'colors:'")
        if 0 <= self.ignore_index < len(self.names):
            raise ConfigError(
                f"ignore_index {self.ignore_index} is also class '{self.names[self.ignore_index]}'.",
                path=self.source, fix="use a value >= the number of classes, e.g. 255")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def check_model(self, num_classes: int, model_names: Sequence[str], model: str | Path | None, fix: str) -> None:
        """Refuse a model with another number of classes; warn when the names differ (beyond case
        and spacing): scores are per class index, and other names usually mean another order."""
        where = self.source or self.root
        if num_classes != self.num_classes:
            raise DatasetError(f"Model {model or ''} predicts {num_classes} classes but dataset {where} has "
                               f"{self.num_classes}.", path=model, fix=fix)

        def norm(name: str) -> str:
            return "".join(str(name).lower().split()).replace("_", "").replace("-", "")

        differ = [(i, a, b) for i, (a, b) in enumerate(zip(model_names, self.names)) if norm(a) != norm(b)]
        if len(model_names) != num_classes:  # a model built without its names: nothing to compare
            differ = []
        if differ:
            shown = "; ".join(f"class {i}: '{a}' in the model, '{b}' in the dataset" for i, a, b in differ[:3])
            warnings.warn(f"Model {model or ''} and dataset {where} name {len(differ)} of {self.num_classes} classes "
                          f"differently ({shown}{'; ...' if len(differ) > 3 else ''}). Scores are per class "
                          "index: check that both list the classes in the same order.", UserWarning, stacklevel=3)

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise DatasetError(
                f"The dataset has no '{name}' split (it has: {', '.join(self.splits) or 'none'}).",
                path=self.source, fix=f"add '{name}: <folder>' to the dataset YAML")
        return self.splits[name]

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def load(cls, path: str | Path) -> "DatasetSpec":
        """Read a dataset YAML. A folder is accepted too: its ``dataset.yaml`` is used."""
        path = Path(path)
        if path.is_dir():
            path = path / "dataset.yaml"
        if not path.exists():
            raise DatasetError(f"Dataset description not found: {path}.", path=path,
                               fix="pass the path of a dataset YAML (see the README, 'From zero to a model on your own data')")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a text file, so not a dataset YAML.", path=path,
                              fix="pass the dataset's .yaml file (or its folder), not an image or archive") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}".replace("\n", " "), path=path,
                              fix="correct the YAML syntax") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping.", path=path,
                              fix="write 'key: value' lines (see README)")
        return cls.from_dict(raw, base=path.parent, source=path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path | None = None,
                  source: Path | None = None) -> "DatasetSpec":
        base = Path(base or ".")
        root = Path(_text(raw, "path", ".", source))
        root = root if root.is_absolute() else (base / root)
        names = _parse_names(raw.get("names"), source)
        colors = _parse_colors(raw.get("colors"), len(names), source)
        images_dir = _text(raw, "images", "images", source)
        labels_dir = _text(raw, "labels", "labels", source)
        label_suffix = _text(raw, "label_suffix", "", source)
        image_suffix = _text(raw, "image_suffix", "", source)
        splits: dict[str, SplitSpec] = {}
        for split in SPLITS:
            entry = raw.get(split)
            if entry is None:
                continue
            if isinstance(entry, str):
                splits[split] = SplitSpec(split, root / entry / images_dir, root / entry / labels_dir,
                                          label_suffix, image_suffix)
            elif isinstance(entry, dict) and "images" in entry:
                labels = _text(entry, "labels", "", source, f"{split}: labels")
                splits[split] = SplitSpec(
                    split, root / _text(entry, "images", "", source, f"{split}: images"),
                    root / labels if labels else None,
                    _text(entry, "label_suffix", label_suffix, source, f"{split}: label_suffix"),
                    _text(entry, "image_suffix", image_suffix, source, f"{split}: image_suffix"))
            else:
                raise ConfigError(f"Split '{split}' must be a folder name or "
                                  "{images: ..., labels: ...}.", path=source,
                                  fix=f"write '{split}: {split}' or '{split}: {{images: ..., labels: ...}}'")
        if not splits:
            raise ConfigError("The dataset YAML names no split.", path=source,
                              fix="add at least 'train: <folder>' (and 'val: <folder>')")
        ignore = _whole_number(raw.get("ignore_index", 255))
        if ignore is None:
            raise ConfigError(f"'ignore_index: {raw.get('ignore_index')}' is not a whole number.", path=source,
                              fix="write the label value that marks unlabelled pixels, e.g. 'ignore_index: 255'")
        return cls(root=root, names=names, splits=splits, colors=colors, ignore_index=ignore,
                   format=_text(raw, "format", "masks", source), source=source)

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> "DatasetSpec":
        """The dataset recorded in a checkpoint or export (``to_dict``'s output).

        Records written before 2026-12-03 kept the folders as given on the command line, relative
        to the training run's working directory, with every split folder already under ``path``:
        read as a YAML, the root came twice (``camvid/camvid/val/images``). Those split folders
        are taken as they are, relative to the current directory."""
        root = Path(str(raw.get("path", ".")))
        folders = [Path(str(raw[k].get("images", ""))) for k in SPLITS if isinstance(raw.get(k), dict)]
        relative = [f for f in folders if not f.is_absolute()]  # an absolute split was never doubled
        legacy = (not root.is_absolute() and root.parts and relative
                  and all(f.parts[:len(root.parts)] == root.parts for f in relative))
        return cls.from_dict({**raw, "path": "."} if legacy else raw)

    def to_dict(self) -> dict[str, Any]:
        """A self-contained description (absolute folders), stored in run folders and checkpoints:
        a model trained on ``mydata/dataset.yaml`` finds its data from any working directory."""
        out: dict[str, Any] = {"path": str(self.root.absolute()), "format": self.format,
                               "ignore_index": self.ignore_index,
                               "names": {i: n for i, n in enumerate(self.names)},
                               "colors": {i: list(c) for i, c in enumerate(self.colors)}}
        for name, s in self.splits.items():
            entry: dict[str, Any] = {"images": str(s.images.absolute())}
            if s.labels is not None:
                entry["labels"] = str(s.labels.absolute())
            if s.label_suffix:
                entry["label_suffix"] = s.label_suffix
            if s.image_suffix:
                entry["image_suffix"] = s.image_suffix
            out[name] = entry
        return out


def _text(raw: dict[str, Any], key: str, default: str, source: Path | None, shown: str | None = None) -> str:
    """A folder, suffix or format entry of the YAML: text, or an error naming the key (a number
    or a list there would otherwise fail deep inside, as a traceback)."""
    value = raw.get(key, default)
    if value is None:
        value = default
    if isinstance(value, PurePath):  # from code rather than a YAML file
        value = str(value)
    if not isinstance(value, str):
        raise ConfigError(f"'{shown or key}: {value}' must be text (a folder, suffix or name).", path=source,
                          fix=f"quote it or write the folder name, e.g. '{shown or key}: \"{value}\"'")
    return value


def _whole_number(v: Any) -> int | None:
    """An integer written as 255, 255.0, "255" or a numpy number; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, Integral):
        return int(v)
    if isinstance(v, Real) and float(v).is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    return None


def _class_id(key: Any, what: str, source: Path | None) -> int:
    try:
        if isinstance(key, bool) or isinstance(key, float):
            raise ValueError
        return int(key)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} key {key!r} is not a class id.", path=source,
                          fix=f"number the entries under '{what}:' with class ids 0, 1, 2, ...") from None


def _parse_names(names: Any, source: Path | None) -> list[str]:
    if isinstance(names, dict):
        keys = sorted(_class_id(k, "names", source) for k in names)
        if keys != list(range(len(keys))):
            raise ConfigError(f"Class ids must be 0..N-1 without gaps, got {keys}.", path=source,
                              fix="number the classes under 'names:' from 0 without gaps")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ConfigError("'names:' is missing or not a list/mapping.", path=source,
                      fix="add 'names: [background, foreground, ...]'")


def _parse_colors(colors: Any, n: int, source: Path | None) -> list[tuple[int, int, int]]:
    if colors is None:
        return []
    if not isinstance(colors, (dict, list)):
        raise ConfigError(f"'colors: {colors}' is not a list or mapping of [r, g, b].", path=source,
                          fix="write 'colors: {0: [0, 0, 0], 1: [255, 0, 0]}' or remove it")
    items = [colors[k] for k in sorted(colors, key=lambda k: _class_id(k, "colors", source))] \
        if isinstance(colors, dict) else list(colors)
    out = []
    for c in items:
        values = [_whole_number(v) for v in c] if isinstance(c, (list, tuple)) else []
        if len(values) != 3 or not all(v is not None and 0 <= v <= 255 for v in values):
            raise ConfigError(f"Colour {c!r} is not [r, g, b] with values 0..255.", path=source,
                              fix="write each colour as [r, g, b]")
        out.append(tuple(values))
    return out
