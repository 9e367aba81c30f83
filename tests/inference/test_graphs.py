"""CUDA graph bookkeeping, testable without a GPU (the capture itself is tested on one, in
test_gpu.py): which input shapes keep a graph, when new ones stop being captured, and that off
the GPU, with autograd on or under inference mode the network is simply called."""
import torch

from pixelwise.inference.graphs import GraphedForward, ShapeCache


def test_shape_cache_keeps_the_shapes_used_last():
    cache = ShapeCache(max_shapes=2)
    for key in ("a", "b"):
        cache.put((key,), key)
    assert cache.get(("a",)) == "a"  # a is now the most recent: b goes first
    cache.put(("c",), "c")
    assert list(cache.entries) == [("a",), ("c",)] and cache.get(("b",)) is None and cache.evictions == 1


def test_shape_cache_stops_admitting_when_sizes_keep_changing():
    """A folder of every size would recapture on every image: after 2 x max_shapes evictions new
    shapes run eagerly, and the graphs kept are still used."""
    cache = ShapeCache(max_shapes=2)
    for i in range(5):
        assert cache.admits()
        cache.put((i,), i)
    assert cache.evictions == 3 and cache.admits()
    cache.put((5,), 5)
    assert cache.evictions == 4 and not cache.admits()
    assert cache.get((5,)) == 5 and cache.get((4,)) == 4


def test_network_called_directly_off_the_gpu_with_grad_or_in_inference_mode(tiny_run):
    from pixelwise.inference.predictor import Segmenter

    seg = Segmenter.load(tiny_run.best, device="cpu")
    assert seg.forward is seg.model  # no graphs on the CPU
    calls = []

    def net(t):
        calls.append(t.shape)
        return t + 1

    g = GraphedForward(net)
    x = torch.zeros(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(g(x), x + 1)
    with torch.inference_mode():
        assert torch.equal(g(x), x + 1)
    assert torch.equal(g(x), x + 1) and len(calls) == 3 and g.shapes == []
