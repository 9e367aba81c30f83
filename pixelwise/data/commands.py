"""``pixelwise data ...`` verbs: parse arguments, call the Python API, print. Nothing else."""
from __future__ import annotations

import argparse
import json
from typing import Any


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """``--opt key=value`` reader options (values parsed as YAML: numbers, booleans, lists)."""
    import yaml

    from pixelwise.errors import ConfigError

    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"Option {p!r} is not key=value.", fix="write e.g. --opt crowd=skip")
        k, v = p.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def cmd_check(a: argparse.Namespace) -> int:
    from pixelwise.data.check import check_dataset, fix_dataset

    report = check_dataset(a.data, workers=a.workers)
    print(report.text())
    if a.fix:
        path = fix_dataset(a.data, a.fix, report=report, workers=a.workers)
        print(f"fixed copy written: {path} (see FIXES.md there)")
    return 0 if report.ok else 1


def cmd_stats(a: argparse.Namespace) -> int:
    from pixelwise.data.stats import dataset_stats, save_chart

    st = dataset_stats(a.data, workers=a.workers, format=a.format)
    print(json.dumps(st.to_dict(), indent=1) if a.json else st.table())
    if a.chart:
        print(f"chart: {save_chart(st, a.chart)}")
    return 0


def cmd_convert(a: argparse.Namespace) -> int:
    from pixelwise.data.convert import convert

    path = convert(a.source, a.out, to=a.to, format=a.format, workers=a.workers, **_options(a.opt))
    print(f"written: {path}")
    return 0


def cmd_split(a: argparse.Namespace) -> int:
    from pixelwise.data.split import split_dataset

    path = split_dataset(a.data, a.out, fractions=a.fractions, seed=a.seed, stratify=a.stratify,
                         source_split=a.source_split, workers=a.workers)
    print(f"written: {path}")
    return 0


def cmd_remap(a: argparse.Namespace) -> int:
    from pixelwise.data.remap import remap_dataset

    path = remap_dataset(a.data, a.out, merge=a.merge, rename=a.rename, drop=a.drop,
                         drop_to=a.drop_to, workers=a.workers)
    print(f"written: {path}")
    return 0


def cmd_view(a: argparse.Namespace) -> int:
    from pixelwise.data.view import view_dataset

    path = view_dataset(a.data, a.out, split=a.split, count=a.count, seed=a.seed, format=a.format)
    print(f"written: {path}")
    return 0


def cmd_download(a: argparse.Namespace) -> int:
    from pixelwise.data.download import download

    path = download(a.name, a.out, url=a.url, progress=not a.quiet)
    print(f"dataset ready: {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="check, describe, convert, split, remap, view, download datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)

    c = dsub.add_parser("check", help="list every problem of a dataset (exit 1 if errors)")
    c.add_argument("data", help="dataset YAML or folder with dataset.yaml")
    c.add_argument("--fix", metavar="OUT", help="write a copy with safe fixes into the new folder OUT")
    c.add_argument("--workers", type=int, help="processes (default: all cores)")
    c.set_defaults(func=cmd_check)

    s = dsub.add_parser("stats", help="class shares, presence, sizes, mean/std, class weights")
    s.add_argument("data", help="dataset YAML/folder, or any source with --format")
    s.add_argument("--format", help="source format (default: detected)")
    s.add_argument("--chart", help="write a PNG chart here")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--workers", type=int)
    s.set_defaults(func=cmd_stats)

    v = dsub.add_parser("convert", help="convert a source into a new folder (masks, coco, yolo)")
    v.add_argument("source", help="source folder/file (VOC, Cityscapes, COCO JSON, YOLO YAML, ...)")
    v.add_argument("--to", default="masks", choices=["masks", "coco", "yolo"])
    v.add_argument("--out", required=True, help="new output folder (must not exist or be empty)")
    v.add_argument("--format", help="source format: masks binary colors voc cityscapes ade20k "
                                    "ade20k-full coco coco-panoptic yolo labelme (default: detected)")
    v.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="reader option, e.g. crowd=skip, table=camvid32, invert=true, "
                        "mode=instances, source=instanceIds, images=DIR")
    v.add_argument("--workers", type=int)
    v.set_defaults(func=cmd_convert)

    p = dsub.add_parser("split", help="reproducible train/val(/test) split into a new folder")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--fractions", type=lambda t: [float(x) for x in t.split(",")], default=[0.8, 0.2],
                   help="e.g. 0.8,0.2 or 0.7,0.15,0.15 (train,val[,test])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stratify", action="store_true", help="balance class presence across splits")
    p.add_argument("--source-split", help="split to divide (default: all splits pooled)")
    p.add_argument("--workers", type=int)
    p.set_defaults(func=cmd_split)

    r = dsub.add_parser("remap", help="merge, rename or drop classes into a new folder")
    r.add_argument("data")
    r.add_argument("--out", required=True)
    r.add_argument("--merge", action="append", default=[], metavar="A,B=NEW",
                   help="merge classes A and B into NEW (repeatable)")
    r.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    r.add_argument("--drop", action="append", default=[], metavar="CLASS")
    r.add_argument("--drop-to", default="ignore", help="'ignore' or a class name dropped pixels join")
    r.add_argument("--workers", type=int)
    r.set_defaults(func=cmd_remap)

    w = dsub.add_parser("view", help="grid of label overlays with a legend (PNG)")
    w.add_argument("data")
    w.add_argument("--out", default="data_view.png")
    w.add_argument("--split", default=None)
    w.add_argument("--count", type=int, default=8)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--format")
    w.set_defaults(func=cmd_view)

    g = dsub.add_parser("download", help="download a public dataset (verified, resumable)")
    g.add_argument("name", help="camvid | voc2012 | ade20k | cityscapes (instructions)")
    g.add_argument("--out", default="datasets")
    g.add_argument("--url", help="override the download URL (mirror)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_download)
