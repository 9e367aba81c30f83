"""int8 post-training quantization of an exported ONNX graph (ONNX Runtime's static QDQ quantizer).

Why these settings (measured on CamVid, FPN + EfficientNet-Lite0, see BENCHMARKS.md):
* QDQ format: one file that ONNX Runtime runs with int8 kernels and OpenVINO reads as
  FakeQuantize, so both backends share one quantized model.
* Per-channel symmetric int8 weights, uint8 activations, min/max calibration on real training
  images (percentile/entropy calibration took 6x longer for no better agreement).
* ``reduce_range`` (7-bit weights): on AVX2 CPUs without VNNI, ONNX Runtime's u8s8 kernels use
  VPMADDUBSW, whose int16 sums saturate; 7-bit weights avoid it (label agreement 95% -> 96%).
* The network body is quantized, stem included; the classifier and everything after it
  (upsampling, crop, softmax/argmax) stay in float: logits rounded to 8 bits flip labels where
  two classes are close. A float stem cost more than it computes: its output, the largest
  tensor of the network (32x192x240 at 384x480), was reordered out of ONNX Runtime's blocked
  layout, quantized and transposed to NHWC (0.57 + 0.34 + 0.2 + 1.1 ms in ONNX Runtime's node
  profile); quantized it is one 0.9 ms conv. Wall clock, the two graphs called in alternation
  (2 threads, AVX-512 VNNI, a slow phase of the VM): 2-6% faster at batch 8, within noise at
  batch 1. CamVid val mIoU 71.70 -> 71.69 (FPN-Lite + Lite0, the benchmarked checkpoint).
* The stem reads 4 channels in ONNX exports (``widen_stem_input``): ONNX Runtime's int8 conv
  ran the 3-channel stem 3x slower per FLOP than a 4-channel one (VNNI multiplies groups of four
  bytes): 1.33 -> 0.49 ms in its node profile at 384x480, for a 0.1 + 0.2 ms Slice + Concat in
  front (nothing in ``--pipeline`` graphs, whose stride Pad adds the channel). Whole int8 graph,
  alternating calls (2 threads, AMX/AVX-512 VNNI Xeon): 11.1 -> 10.3 ms per image at batch 1,
  unchanged at batch 8 (where the stem was cheaper per image); the labels are identical (the
  extra channel meets zero weights). OpenVINO exports skip it: its int8 stem was already fast and
  the copy made batch 1 3% slower there.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pixelwise.export import ExportError

BODY_MARKERS = ("encoder/", "decoder/")  # node-name parts of the network body in our graphs
KEEP_FLOAT_MARKERS = ("classifier",)


def float_nodes(node_names: list[str]) -> list[str]:
    """Nodes to leave in float: everything outside the body, the classifier and all nodes after
    it (graphs are topologically sorted)."""
    keep = [n for n in node_names if not any(m in n for m in BODY_MARKERS)
            or any(m in n for m in KEEP_FLOAT_MARKERS)]
    cls = [i for i, n in enumerate(node_names) if "classifier" in n]
    if cls:
        keep += node_names[cls[0]:]
    return sorted(set(keep))


def widen_stem_input(model) -> bool:
    """Give the first convolution a 4th input channel met by zero weights: same outputs, but ONNX
    Runtime's int8 kernels take their fast path (see the module doc). The channel is added in
    float in front of the input's QuantizeLinear (its nodes are outside the network body, so the
    quantizer leaves them in float and calibrates the 4-channel tensor, whose range is the
    3-channel one):
    * a stem reading the graph's input gets a copy of channel 0 (Slice + Concat, 0.3 ms);
    * a stem behind a constant Pad (``--pipeline`` graphs pad to the stride in the graph) gets a
      zero channel from that Pad, which copies the tensor anyway: free.
    Other stems are left alone. Returns whether the graph was changed."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    for conv in g.node:
        if conv.op_type != "Conv" or conv.input[1] not in inits:
            continue
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        w = numpy_helper.to_array(inits[conv.input[1]])
        if groups != 1 or w.shape[1] != 3:
            return False  # only the first conv counts, and only a plain RGB one
        name = "stem_input_channels"
        x = conv.input[0]
        pad = producer.get(x)
        if x in {i.name for i in g.input}:
            g.initializer.extend([numpy_helper.from_array(np.array([0], np.int64), f"{name}/start"),
                                  numpy_helper.from_array(np.array([1], np.int64), f"{name}/end")])
            new_nodes = [helper.make_node("Slice", [x, f"{name}/start", f"{name}/end", f"{name}/end"],
                                          [f"{name}/channel0"], name=f"{name}/Slice"),
                         helper.make_node("Concat", [x, f"{name}/channel0"], [f"{name}/x4"],
                                          name=f"{name}/Concat", axis=1)]
            conv.input[0], before = f"{name}/x4", conv
        elif (pad is not None and pad.op_type == "Pad" and len(pad.input) > 1 and pad.input[1]
              and all(helper.get_attribute_value(a) == b"constant" for a in pad.attribute if a.name == "mode")
              and (len(pad.input) < 4 or not pad.input[3])  # pads for all four axes
              and sum(1 for n in g.node if x in n.input) == 1):
            # NCHW pads are [begins..., ends...]: one more channel at the end (index 5).
            g.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 1, 0, 0], np.int64),
                                                         f"{name}/one_channel"))
            new_nodes = [helper.make_node("Add", [pad.input[1], f"{name}/one_channel"], [f"{name}/pads"],
                                          name=f"{name}/Add")]
            pad.input[1], before = f"{name}/pads", pad
        else:
            return False
        g.initializer.append(numpy_helper.from_array(np.concatenate([w, np.zeros_like(w[:, :1])], 1),
                                                     f"{name}/weight"))
        old_weight, conv.input[1] = conv.input[1], f"{name}/weight"
        if not any(old_weight in n.input for n in g.node):
            g.initializer.remove(inits[old_weight])
        at = list(g.node).index(before)
        for n in reversed(new_nodes):
            g.node.insert(at, n)
        return True
    return False


class _Feeds:
    """ONNX Runtime's CalibrationDataReader protocol over a list of ready inputs."""

    def __init__(self, name: str, feeds: Iterable[np.ndarray]):
        self._it: Iterator[np.ndarray] = iter(feeds)
        self._name = name

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self):  # part of the protocol; one pass is all min/max calibration needs
        pass


def quantize_int8(fp32_path: Path, out_path: Path, feeds: list[np.ndarray], input_name: str,
                  widen_stem: bool = True) -> dict:
    """Write an int8 QDQ copy of ``fp32_path`` calibrated on ``feeds`` (graph inputs, real images).
    ``widen_stem``: apply ``widen_stem_input`` (for ONNX Runtime; not for OpenVINO).

    Returns a record of what was done, stored in the export metadata."""
    try:
        import onnx
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ExportError("int8 export needs onnx and onnxruntime.", fix="pip install 'pixelwise[export]'") from None
    if not feeds:
        raise ExportError("int8 export needs calibration images and none were found.",
                          fix="pass --calib FOLDER_OF_TRAINING_IMAGES")
    import logging

    root, level = logging.getLogger(), logging.getLogger().level
    with tempfile.TemporaryDirectory(prefix="pixelwise_int8_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ONNX shape inference + BatchNorm folding first, as ONNX Runtime advises for static
        # quantization. Its symbolic shape inference is skipped: it adds nothing for a conv net
        # (every dim it cannot resolve is symbolic anyway), gives up on Resize-by-scale chains
        # of dynamic sizes, and when it does, leaves a temporary model and a 12 MB external-data
        # file in the current directory.
        root.setLevel(logging.ERROR)  # its shape inference warns about every symbolic dim
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        finally:
            root.setLevel(level)
        pre_model = onnx.load(str(pre))
        widened = widen_stem and widen_stem_input(pre_model)
        if widened:
            onnx.save(pre_model, str(pre))
        names = [n.name for n in pre_model.graph.node]
        excluded = float_nodes(names)
        tmp_out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(tmp_out), _Feeds(input_name, feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=excluded)
        model = onnx.load(str(tmp_out))
        src = onnx.load(str(fp32_path), load_external_data=False)
        del model.metadata_props[:]
        model.metadata_props.extend(src.metadata_props)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out_path))
    q = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
    return {"method": "onnxruntime static QDQ, per-channel int8 weights (reduce_range), uint8 activations, min/max",
            "calibration_images": len(feeds), "float_nodes": len(excluded), "quantize_nodes": q,
            "stem_input_channels": 4 if widened else 3}
