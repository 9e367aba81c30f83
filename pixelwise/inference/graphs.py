"""CUDA graphs for the PyTorch predictor on a GPU.

At batch 1 a GPU waits on the host: every layer is a kernel launch from Python. On an H200 the
default model's forward took 3.7 ms eager and 0.6 ms replayed from a CUDA graph (BENCHMARKS.md,
"GPU inference"). ``GraphedForward`` captures a forward once per input shape and replays it; the
same image size (a folder from one camera, video frames, batches of small tiles) then costs one
launch. Each captured shape keeps the memory of its activations, so only a few shapes are kept
(least recently used first out), and inputs above a 1080p frame run eagerly.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch

MAX_SHAPES = 4
# Inputs up to a 1080p frame (padded to 1088 rows) are replayed; larger ones run eagerly. A graph
# keeps its activations' memory for good (about 140 bytes per pixel for the default model in fp32,
# so some 300 MB at this size), and on large inputs the launches it saves no longer matter.
MAX_INPUT_VALUES = 3 * 1920 * 1088
_LOCK = threading.Lock()  # captures and replays of every predictor in the process take turns


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    input: torch.Tensor
    output: torch.Tensor


class ShapeCache:
    """Which inputs keep a graph: the ``max_shapes`` keys used last. Sizes that keep changing (a
    folder of photos of every size, many TTA scales) would recapture on every call, each capture
    costing a few eager runs; so after ``max_evictions`` evictions new keys are no longer admitted
    and run eagerly, while the graphs already kept are still replayed."""

    def __init__(self, max_shapes: int = MAX_SHAPES, max_evictions: int | None = None):
        self.max_shapes = max_shapes
        self.max_evictions = 2 * max_shapes if max_evictions is None else max_evictions
        self.entries: OrderedDict[tuple, Any] = OrderedDict()
        self.evictions = 0

    def get(self, key: tuple) -> Any:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def admits(self) -> bool:
        return self.evictions < self.max_evictions

    def put(self, key: tuple, entry: Any) -> None:
        self.entries[key] = entry
        while len(self.entries) > self.max_shapes:
            self.entries.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        self.entries.clear()


class GraphedForward:
    """``fn(x)`` for CUDA tensors, replayed from a CUDA graph captured at the first call with each
    input shape, dtype, layout and device (see ``ShapeCache`` for which are kept). The result is a
    fresh tensor (the graph's own output buffer is overwritten by the next replay). Only under
    ``torch.no_grad``; with autograd on, under ``torch.inference_mode`` or on the CPU it calls ``fn``.
    If a capture fails (an operation that cannot be captured, or another thread's CUDA work during
    the capture), it warns once and calls ``fn`` from then on."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], max_shapes: int = MAX_SHAPES,
                 max_input_values: int = MAX_INPUT_VALUES):
        self.fn, self.max_input_values = fn, max_input_values
        self.cache = ShapeCache(max_shapes)
        self.disabled = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (self.disabled or x.device.type != "cuda" or x.numel() > self.max_input_values
                or torch.is_grad_enabled() or torch.is_inference_mode_enabled()):
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, x.device, x.stride())
        with _LOCK:
            entry = self.cache.get(key)
            if entry is None and self.cache.admits():
                entry = self._capture(x)
                if entry is not None:
                    self.cache.put(key, entry)
            if entry is not None:
                entry.input.copy_(x)
                entry.graph.replay()
                return entry.output.clone()
        return self.fn(x)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a captured graph, least recently used first."""
        return [k[0] for k in self.cache.entries]

    def _capture(self, x: torch.Tensor) -> _Graph | None:
        static = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
        static.copy_(x)
        try:
            # On x's device (cuda:1 too). The outer stream context is a no-op when all goes well;
            # when the capture fails, leaving it puts the caller's stream back (torch.cuda.graph
            # does not when its capture_end raises). Inside: PyTorch's documented sequence.
            with torch.cuda.device(x.device), torch.cuda.stream(torch.cuda.current_stream(x.device)):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
                    for _ in range(2):
                        self.fn(static)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = self.fn(static)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly
            self.disabled = True
            self.cache.clear()  # the graphs kept so far would never be replayed: free their memory
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                          "predicting without CUDA graphs", stacklevel=3)
            return None
        return _Graph(graph, static, out)
