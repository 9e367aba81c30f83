"""CUDA graphs for the PyTorch predictor on a GPU.

At batch 1 a GPU waits on the host: every layer is a kernel launch from Python. On an H200 the
default model's forward took 3.7 ms eager and 0.6 ms replayed from a CUDA graph (BENCHMARKS.md,
"GPU inference"). ``GraphedForward`` captures a forward once per input shape and replays it; the
same image size (a folder from one camera, video frames, the tiles of a large image) then costs
one launch. Each captured shape keeps the memory of its activations, so only a few shapes are
kept (least recently used first out) and large inputs run eagerly.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

MAX_SHAPES = 4
MAX_INPUT_VALUES = 8 * 3 * 1024 * 1024  # a batch of 8 1024-px tiles; a whole 8000x8000 image runs eagerly


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    input: torch.Tensor
    output: torch.Tensor


class GraphedForward:
    """``fn(x)`` for CUDA tensors, replayed from a CUDA graph captured at the first call with each
    input shape, dtype and layout. The result is a fresh tensor (the graph's own output buffer is
    overwritten by the next replay). Called under ``torch.no_grad``; calls from several threads
    take turns (a graph's buffers are shared). If capture fails (an operation that cannot be
    captured), it warns once and runs ``fn`` eagerly from then on."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], max_shapes: int = MAX_SHAPES,
                 max_input_values: int = MAX_INPUT_VALUES):
        self.fn, self.max_shapes, self.max_input_values = fn, max_shapes, max_input_values
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.disabled = False
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.disabled or x.device.type != "cuda" or x.numel() > self.max_input_values or torch.is_grad_enabled():
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, x.device, x.stride())
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(x)
                if entry is None:
                    return self.fn(x)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_shapes:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            entry.input.copy_(x)
            entry.graph.replay()
            return entry.output.clone()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a captured graph, least recently used first."""
        return [k[0] for k in self._graphs]

    def _capture(self, x: torch.Tensor) -> _Graph | None:
        static = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
        static.copy_(x)
        try:
            side = torch.cuda.Stream(x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
                for _ in range(2):
                    self.fn(static)
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.fn(static)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly
            self.disabled = True
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                          "predicting without CUDA graphs", stacklevel=3)
            return None
        return _Graph(graph, static, out)
