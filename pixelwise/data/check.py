"""``pixelwise data check``: find every problem of a mask-folder dataset, each with file and fix.

Per-file checks run in worker processes on all cores, each reading one image and one label at a
time (memory bounded by one image per worker); split-level checks (pairing, duplicates, classes
never present) use the small per-file summaries. ``fix_dataset`` writes the *safe, reversible*
fixes into a new folder and never touches the source.
"""
from __future__ import annotations

import hashlib
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import UnidentifiedImageError

from pixelwise.data.formats.base import parallel_map
from pixelwise.data.io import channels_equal, displayed_size, open_image, save_png
from pixelwise.data.pairing import Sample, pair_split
from pixelwise.data.samples import binary_convert_fix, foreground_is_ignored, require_masks
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError, PixelwiseError

JPEG_EXTS = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Problem:
    severity: str  # error | warning
    kind: str  # short tag: unpaired, unreadable, size, values, jpeg, rgb, empty, duplicate, ...
    file: Path | None
    message: str
    fix: str
    related: tuple[Path, ...] = ()  # the other files involved (duplicates)

    def line(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"[{self.severity}] {self.kind}: {where}{self.message} Fix: {self.fix}"


@dataclass
class CheckReport:
    spec: DatasetSpec
    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    class_images: np.ndarray | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def text(self) -> str:
        lines = [p.line() for p in self.problems]
        lines.append(f"{self.images} image(s) checked: {len(self.errors)} error(s), "
                     f"{len(self.warnings)} warning(s).")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Ctx:
    num_classes: int
    ignore_index: int
    source: Path | None = None  # the dataset's YAML, for fixes that name it


def _hash(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def smear_fraction(label: np.ndarray) -> float:
    """Share of pixels unlike all 4 neighbours *and* strictly between them in value.

    Lossless masks almost never have such pixels (a pixel differing from every neighbour is a
    thin structure, and its value is rarely between theirs); JPEG ringing creates them along
    every boundary, so a few percent flags a once-JPEG mask even when all values are valid.
    """
    if label.ndim != 2 or min(label.shape) < 3:
        return 0.0
    a = label.astype(np.int32)
    c = a[1:-1, 1:-1]
    nb = np.stack([a[:-2, 1:-1], a[2:, 1:-1], a[1:-1, :-2], a[1:-1, 2:]])
    lone = (nb != c).all(0)
    between = (c > nb.min(0)) & (c < nb.max(0))
    return float((lone & between).mean())


def _check_one(ctx: _Ctx, sample: Sample) -> dict[str, Any]:
    """Everything about one pair that needs pixels; returns problems and a small summary."""
    out: dict[str, Any] = {"problems": [], "present": None, "hash": None, "ignored": False}
    probs = out["problems"]
    size, turned = None, False
    try:
        out["hash"] = _hash(sample.image)
        with open_image(sample.image) as im:
            im.load()
            size = displayed_size(im)  # what training reads: EXIF orientation applied
            turned = size != (im.height, im.width)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        probs.append(Problem("error", "unreadable", sample.image,
                             f"cannot decode the image ({exc}).",
                             "re-export or remove the image (it is corrupt or truncated)"))
    if sample.label is None:
        return out
    try:
        with open_image(sample.label) as lab:
            lab.load()
            mode = lab.mode
            arr = np.asarray(lab)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        probs.append(Problem("error", "unreadable", sample.label, f"cannot decode the label ({exc}).",
                             "re-export or remove the label"))
        return out
    if arr.ndim == 3:
        rgb = arr[..., :3]
        if channels_equal(rgb):
            probs.append(Problem("warning", "grey-rgb", sample.label,
                                 f"a {mode} label whose channels are equal (read as grey).",
                                 "save it single-channel ('pixelwise data check --fix OUT' does)"))
            arr = rgb[..., 0]
        else:
            n_col = len(np.unique(rgb.reshape(-1, 3), axis=0))
            probs.append(Problem("error", "rgb", sample.label,
                                 f"an RGB colour mask ({n_col} colours) where a class-index mask is "
                                 "expected.",
                                 "convert with 'pixelwise data convert DATA --format colors --to masks "
                                 "--out NEW' (uses the YAML's colors: or a known colour table)"))
            return out
    if arr.dtype.kind == "f":
        probs.append(Problem("error", "values", sample.label, "floating-point label values.",
                             "save labels as integer PNGs"))
        return out
    arr = arr.astype(np.int64)
    if size is not None and arr.shape != size:
        probs.append(Problem("error", "size", sample.label,
                             f"label is {arr.shape[1]}x{arr.shape[0]} but image {sample.image.name} is "
                             f"{size[1]}x{size[0]}" + (" (as displayed: its EXIF orientation turns it)"
                                                        if arr.shape == size[::-1] and turned else "") + ".",
                             "re-export the label at the image size as displayed (never resize with interpolation)"))
    values, counts = np.unique(arr, return_counts=True)
    valid = (values < ctx.num_classes) | (values == ctx.ignore_index)
    bad = values[~valid]
    smear = smear_fraction(arr)
    shown = ", ".join(map(str, bad[:10].tolist()))
    if smear > 0.01 or (len(bad) >= 5 and counts[~valid].sum() / arr.size < 0.25):
        extra = f" and stray values {shown}" if len(bad) else ""
        probs.append(Problem("error", "jpeg", sample.label,
                             f"{smear:.1%} of pixels hold values between their neighbours' classes"
                             f"{extra}: the mask was JPEG-compressed at some point.",
                             "re-export the mask losslessly (PNG) from the original annotation"))
    elif len(bad):
        probs.append(Problem("error", "values", sample.label,
                             f"value(s) {shown} are neither a class (0..{ctx.num_classes - 1}) nor "
                             f"the ignore value {ctx.ignore_index}.",
                             binary_convert_fix(ctx.source) if ctx.num_classes == 2 and bad.tolist() == [255]
                             else "add the classes to 'names:', set 'ignore_index:', or map them with "
                             "'pixelwise data remap'"))
    present = np.zeros(ctx.num_classes, bool)
    ok = values[values < ctx.num_classes]
    present[ok] = True
    out["present"] = present
    out["ignored"] = bool((values == ctx.ignore_index).any())
    if not present.any():
        probs.append(Problem("warning", "empty", sample.label,
                             "no pixel of any class (only ignore or unknown values).",
                             "annotate the image or drop it from the split"))
    return out


def check_dataset(data: str | Path | DatasetSpec, workers: int | None = None) -> CheckReport:
    """Check every split; collect every problem rather than stopping at the first."""
    spec = data if isinstance(data, DatasetSpec) else DatasetSpec.load(data)
    require_masks(spec, "'pixelwise data check'")  # what training reads; other formats convert first
    report = CheckReport(spec)
    ctx = _Ctx(spec.num_classes, spec.ignore_index, spec.source)
    ignore_seen = False
    hashes: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    presence = np.zeros(spec.num_classes, np.int64)
    for name, split in spec.splits.items():
        try:
            pairing = pair_split(split, require_labels=True)
        except DatasetError as exc:
            report.problems.append(Problem("error", "layout", exc.path, str(exc).split(" Fix: ")[0],
                                           exc.fix or ""))
            continue
        for img in pairing.images_without_label:
            report.problems.append(Problem("error", "unpaired", img, "image without a label.",
                                           f"add {split.labels}/{img.stem}{split.label_suffix}.png or "
                                           "remove the image"))
        for lab in pairing.labels_without_image:
            report.problems.append(Problem("error", "unpaired", lab, "label without an image.",
                                           "add its image or remove the label"))
        if split.labels is not None and split.labels.is_dir():
            for p in sorted(split.labels.iterdir()):
                if p.suffix.lower() in JPEG_EXTS:
                    report.problems.append(Problem(
                        "error", "jpeg", p, "a JPEG label: lossy compression smears values between "
                        "classes (and pixelwise does not read .jpg labels).",
                        "re-export the mask as PNG from the original annotation"))
        for s, res in zip(pairing.samples, parallel_map(_check_one, ctx, pairing.samples, workers)):
            report.images += 1
            report.problems.extend(res["problems"])
            if res["hash"]:
                hashes[res["hash"]].append((name, s.image))
            if res["present"] is not None:
                presence += res["present"]
            ignore_seen |= res["ignored"]
    for _, files in hashes.items():
        if len(files) > 1:
            splits = {s for s, _ in files}
            sev = "error" if len(splits) > 1 else "warning"
            what = "in several splits (leaks evaluation data into training)" if sev == "error" else "in one split"
            report.problems.append(Problem(
                sev, "duplicate", files[0][1],
                f"identical image file {what}: " + ", ".join(str(p) for _, p in files[1:4]) + ".",
                "keep one copy ('--fix OUT' keeps the first within a split)",
                tuple(p for _, p in files[1:])))
    absent = set(np.flatnonzero(presence == 0).tolist())
    if report.images and foreground_is_ignored(spec, presence, ignore_seen):
        report.problems.append(Problem("error", "binary-255", spec.source,
                                       f"class 1 '{spec.names[1]}' never appears while the labels hold "
                                       "255, the ignore value: the foreground would be ignored in "
                                       "training and scoring.",
                                       binary_convert_fix(spec.source or spec.root)))
        absent.discard(1)  # reported above, not again as an absent class
    for c in sorted(absent):
        report.problems.append(Problem("warning", "absent-class", spec.source,
                                       f"class {c} '{spec.names[c]}' never appears in any label.",
                                       "annotate it, or drop it with 'pixelwise data remap --drop'"))
    report.class_images = presence
    return report


def fix_dataset(data: str | Path | DatasetSpec, out: str | Path, report: CheckReport | None = None,
                workers: int | None = None) -> Path:
    """Copy the dataset to ``out`` applying only safe, reversible fixes; returns the new YAML.

    Fixes: 3-channel grey labels saved single-channel (same values); unpaired files, unreadable
    images and within-split duplicates left out (listed in FIXES.md, still in the source). Size
    mismatches, unknown values, colour and JPEG masks are not guessed: those pairs are left out
    too, so the new folder checks clean, and the list says why.
    """
    spec = data if isinstance(data, DatasetSpec) else DatasetSpec.load(data)
    report = report or check_dataset(spec, workers)
    out = Path(out)
    _refuse_overwrite(out, spec)
    bad_files = {p.file.resolve() for p in report.problems
                 if p.file is not None and p.severity == "error" and p.kind != "absent-class"}
    dup_drop = set()
    for p in report.problems:
        if p.kind == "duplicate" and p.severity == "warning":
            dup_drop.update(x.resolve() for x in p.related)
    grey = {p.file.resolve() for p in report.problems if p.kind == "grey-rgb"}
    log = ["# Fixes applied by 'pixelwise data check --fix'", "", f"Source: {spec.root}", ""]
    for name, split in spec.splits.items():
        pairing = pair_split(split)
        img_dir, lab_dir = out / name / "images", out / name / "labels"
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for s in pairing.samples:
            ri, rl = s.image.resolve(), s.label.resolve()
            if ri in bad_files or rl in bad_files or ri in dup_drop:
                log.append(f"- left out {s.image.name} / {s.label.name} (see 'pixelwise data check')")
                continue
            shutil.copy2(s.image, img_dir / s.image.name)
            if rl in grey:
                with open_image(s.label) as lab:
                    arr = np.asarray(lab)[..., 0]
                save_png(lab_dir / f"{s.stem}.png", arr)
                log.append(f"- {s.label.name}: 3-channel grey label saved single-channel")
            else:
                shutil.copy2(s.label, lab_dir / s.label.name)
        for p in pairing.images_without_label + pairing.labels_without_image:
            log.append(f"- left out unpaired {p}")
    desc = spec.to_dict()
    desc["path"] = "."
    for name, s in spec.splits.items():
        entry = {"images": f"{name}/images", "labels": f"{name}/labels"}
        if s.label_suffix:
            entry["label_suffix"] = s.label_suffix
        if s.image_suffix:
            entry["image_suffix"] = s.image_suffix
        desc[name] = entry
    (out / "dataset.yaml").write_text(yaml.safe_dump(desc, sort_keys=False))
    (out / "FIXES.md").write_text("\n".join(log) + "\n")
    return out / "dataset.yaml"


def _refuse_overwrite(out: Path, spec: DatasetSpec) -> None:
    """Outputs go to a new (or empty) folder that is not inside the source."""
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"Output folder {out} exists and is not empty.", path=out,
                           fix="choose a new folder; pixelwise never writes over existing data")
    root = spec.root.resolve()
    o = out.resolve()
    if o == root or root in o.parents:
        # inside the source: allowed only in a fresh sub-folder that no split uses
        for s in spec.splits.values():
            for d in (s.images, s.labels):
                if d is not None and (o == d.resolve() or d.resolve() in o.parents):
                    raise DatasetError(f"Output folder {out} is inside the source folder {d}.",
                                       path=out, fix="write to a folder outside the dataset")


__all__ = ["CheckReport", "Problem", "check_dataset", "fix_dataset", "PixelwiseError"]
