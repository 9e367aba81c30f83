"""ONNX -> OpenVINO IR (.xml + .bin); the metadata travels in the sidecar JSON and rt_info."""
from __future__ import annotations

from pathlib import Path

from pixelwise.export import ExportError


def onnx_to_openvino(onnx_path: Path, xml_path: Path, fp16: bool = False) -> Path:
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("openvino is not installed.", fix="pip install 'pixelwise[export]'") from None
    model = ov.convert_model(str(onnx_path))
    import onnx

    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    if "pixelwise" in props:
        model.set_rt_info(props["pixelwise"], ["model_info", "pixelwise"])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=fp16)
    return xml_path
