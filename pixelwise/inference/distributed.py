"""Distributed batch inference: ``torchrun`` runs this module, each rank predicts its shard.

    torchrun --nproc_per_node 2 -m pixelwise.inference.distributed MODEL SOURCE --out DIR

Files are sharded round-robin by rank (``files[rank::world]``), so outputs do not depend on
the number of processes; rank 0 writes ``manifest.json`` listing every output once gathered,
and the files no rank could read (skipped, also in ``skipped.txt``; the exit status is then 2).
CPU processes use the gloo backend; GPUs use nccl with one device per local rank.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from pixelwise.cli import outputs_arg, save_flags
from pixelwise.errors import PixelwiseError, file_system_line, first_line, one_line, one_line_warnings
from pixelwise.shutdown import end_by, sigterm_unwinds


def shard(files: list[Path], rank: int, world: int) -> list[Path]:
    return files[rank::world]


def _load(model: str, device: str) -> Any:
    from pixelwise.runtime.backends import is_exported

    if is_exported(model):
        from pixelwise.runtime import RuntimeSegmenter

        return RuntimeSegmenter.load(model, threads=1)
    from pixelwise.inference.predictor import Segmenter

    return Segmenter.load(model, device=device)


def run(model: str, source: str, out: str, flip: bool = False, progress: bool = False,
        tile: int | None = None, overlap: int | None = None,
        save: Sequence[str] = ("labels", "color")) -> list[str]:
    """Predict this rank's shard (``tile``: sliding-window mode for huge images); returns (on
    rank 0) every output path, gathered."""
    import torch
    import torch.distributed as dist

    from pixelwise.data.io import atomic_write_bytes
    from pixelwise.errors import UnreadableImagesError
    from pixelwise.runtime.batch import (expand_sources, leave_out_earlier_outputs, output_stems, predict_folder,
                                         report_skipped)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = f"cuda:{local}" if use_cuda else "cpu"
    if use_cuda:
        torch.cuda.set_device(local)  # NCCL's collectives use the current device: each rank its own
    if not use_cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    files = leave_out_earlier_outputs(expand_sources(source), out)
    seg = _load(model, device)
    if progress and rank == 0 and world > 1:
        print(f"predicting {len(files)} images in {world} processes (the bar shows this one's share)", flush=True)
    try:
        # SIGTERM (torchrun stopping the ranks when one fails, a kill) unwinds the predicting through
        # its cleanup; not the collectives below, where a Python handler would wait for the peers.
        with sigterm_unwinds():
            mine = predict_folder(seg, source, out, files=shard(files, rank, world),
                                  progress=progress and rank == 0, flip=flip, skipped_list=None,
                                  names_by_file=output_stems(files), **save_flags(save),
                                  **({"tile": tile, "overlap": overlap} if tile is not None or overlap is not None
                                     else {}))
        skipped: list[tuple[Path, str]] = []
    except UnreadableImagesError as exc:  # the other images were predicted; rank 0 reports them all
        mine, skipped = exc.written, exc.skipped
    part = ([str(p) for p in mine], [(str(p), why) for p, why in skipped])
    gathered: list[Any] = [None] * world
    if world > 1:
        with peers_gone():
            dist.all_gather_object(gathered, part)
    else:
        gathered = [part]
    everything = sorted(p for outs, _ in gathered for p in outs)
    all_skipped = sorted((Path(p), why) for _, skips in gathered for p, why in skips)
    if rank == 0:
        with sigterm_unwinds():  # no collective here: a kill still removes the manifest's temp file
            atomic_write_bytes(Path(out, "manifest.json"), json.dumps({
                "model": model, "source": source, "world_size": world, "images": len(files), "outputs": everything,
                "skipped": [{"path": str(p), "reason": why} for p, why in all_skipped]}, indent=2).encode())
    if world > 1:
        with peers_gone():
            dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        report_skipped(all_skipped, len(files), Path(out), "skipped.txt", [Path(p) for p in everything])
    return everything


@contextmanager
def peers_gone() -> Iterator[None]:
    """A collective whose peer has exited (its own error is printed above) raised the backend's
    RuntimeError with a 25-line traceback on the ranks still waiting: one line instead."""
    try:
        yield
    except RuntimeError as exc:
        raise PixelwiseError(f"Another process of this run stopped before sharing its results ({first_line(exc)}).",
                             fix="see the other rank's error above (torchrun's report names it); this process's "
                                 "own outputs are written") from None


def _rank_tag() -> str:
    """' [rank 1 of 2]' under torchrun: every process checks the same options, so the same line
    comes once per process, and this says why."""
    world = os.environ.get("WORLD_SIZE", "1")
    return f" [rank {os.environ.get('RANK', '0')} of {world}]" if world.isdigit() and int(world) > 1 else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pixelwise.inference.distributed",
                                description="sharded batch prediction (launch with torchrun)")
    p.add_argument("model", help="checkpoint (.pt) or exported .onnx/.xml")
    p.add_argument("source", help="image folder, file or glob")
    p.add_argument("--out", default="runs/predict")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--tile", type=int, help="sliding-window mode with tiles of this size (huge images)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (with --tile; default 64, at most half the tile)")
    p.add_argument("--save", type=outputs_arg, default=("labels", "color"),
                   help="files per image: labels, color, overlay, confidence (default labels,color)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    import warnings

    warnings.showwarning = one_line_warnings(warnings.showwarning, _rank_tag())  # one line, as the CLI's
    try:
        written = run(a.model, a.source, a.out, a.flip, not a.quiet, a.tile, a.overlap, a.save)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{len(written)} file{'' if len(written) == 1 else 's'} written to {a.out} "
                  f"(listed in {Path(a.out, 'manifest.json')})")
    except PixelwiseError as exc:  # one line, no traceback, as the CLI does
        print(f"pixelwise: error:{_rank_tag()} {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (a file where --out's folder goes, permissions)
        if exc.filename is None:
            raise
        print(f"pixelwise: error:{_rank_tag()} {file_system_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # torchrun forwards Ctrl-C to every rank: one line each
        print(f"pixelwise: interrupted{_rank_tag()}", file=sys.stderr)
        end_by(signal.SIGINT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
