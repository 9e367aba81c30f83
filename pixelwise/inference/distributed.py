"""Distributed batch inference: ``torchrun`` runs this module, each rank predicts its shard.

    torchrun --nproc_per_node 2 -m pixelwise.inference.distributed MODEL SOURCE --out DIR

Files are sharded round-robin by rank (``files[rank::world]``), so outputs do not depend on
the number of processes; rank 0 writes ``manifest.json`` listing every output once gathered.
CPU processes use the gloo backend; GPUs use nccl with one device per local rank.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def shard(files: list[Path], rank: int, world: int) -> list[Path]:
    return files[rank::world]


def _load(model: str, device: str) -> Any:
    if Path(model).suffix in (".onnx", ".xml"):
        from pixelwise.runtime import RuntimeSegmenter

        return RuntimeSegmenter.load(model, threads=1)
    from pixelwise.inference.predictor import Segmenter

    return Segmenter.load(model, device=device)


def run(model: str, source: str, out: str, flip: bool = False, progress: bool = False) -> list[str]:
    """Predict this rank's shard; returns (on rank 0) every output path, gathered."""
    import torch
    import torch.distributed as dist

    from pixelwise.runtime.batch import expand_sources, predict_folder

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = f"cuda:{local}" if use_cuda else "cpu"
    if not use_cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    files = expand_sources(source)
    seg = _load(model, device)
    mine = predict_folder(seg, source, out, files=shard(files, rank, world), progress=progress and rank == 0,
                          flip=flip)
    gathered: list[Any] = [None] * world
    if world > 1:
        dist.all_gather_object(gathered, [str(p) for p in mine])
    else:
        gathered = [[str(p) for p in mine]]
    everything = sorted(p for part in gathered for p in part)
    if rank == 0:
        Path(out, "manifest.json").write_text(json.dumps({"model": model, "source": source, "world_size": world,
                                                          "images": len(files), "outputs": everything}, indent=2))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return everything


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pixelwise.inference.distributed",
                                description="sharded batch prediction (launch with torchrun)")
    p.add_argument("model", help="checkpoint (.pt) or exported .onnx/.xml")
    p.add_argument("source", help="image folder, file or glob")
    p.add_argument("--out", default="runs/predict")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    run(a.model, a.source, a.out, a.flip, not a.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
