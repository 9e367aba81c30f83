import pytest
import torch

from pixelwise.errors import ModelError
from pixelwise.models import create_model, list_models
from pixelwise.models.registry import count_parameters


def test_registry_has_the_promised_architectures():
    assert {"fcn", "unet", "deeplabv3plus", "fpn", "fpn_lite"} <= set(list_models())


@pytest.mark.parametrize("arch", ["fcn", "unet", "deeplabv3plus", "fpn", "fpn_lite"])
@pytest.mark.parametrize("encoder", ["efficientnet_lite0", "resnet18"])
def test_any_arch_on_any_encoder_any_size(arch, encoder):
    model = create_model(arch, encoder, num_classes=5).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (64, 96)]:  # 37x53 is not divisible by the stride of 32
            out = model(torch.randn(1, 3, h, w))
            assert out.shape == (1, 5, h, w)
    assert count_parameters(model) > 0


def test_unknown_names_are_explained():
    with pytest.raises(ModelError, match="Unknown architecture 'segnetx'"):
        create_model("segnetx")
    with pytest.raises(ModelError, match="timm encoder 'not_a_net'"):
        create_model("fpn", "not_a_net")


def test_models_command_lists_parameter_counts(capsys):
    from pixelwise.cli import main

    assert main(["models", "--classes", "11"]) == 0
    out = capsys.readouterr().out
    for arch in ("fcn", "unet", "deeplabv3plus", "fpn"):
        assert arch in out
    assert "params (M)" in out


def _size_based(model) -> None:
    """Switch a pyramid head to upsampling by target sizes (what it does without reductions)."""
    model.decoder.scales = None


@pytest.mark.parametrize("arch", ["fpn", "fpn_lite"])
def test_pyramid_heads_upsample_by_constant_factors_equal_to_sizes_and_export_without_shape_chains(arch, tmp_path):
    """The pyramid heads read their upsampling factors from the encoder's reductions: the same
    numbers as upsampling to the target sizes, but an exported decoder holds no Shape ops."""
    import onnx

    torch.manual_seed(0)
    model = create_model(arch, "efficientnet_lite0", num_classes=4).eval()
    assert model.decoder.scales == [1, 2, 4, 8]  # strides 4, 8, 16, 32 relative to stride 4
    x = torch.randn(2, 3, 70, 100)  # padded to 96x128 inside the model
    with torch.no_grad():
        by_scale = model(x)
        _size_based(model)
        by_size = model(x)
    assert torch.equal(by_scale, by_size)

    def decoder_shape_ops(m) -> int:
        path = tmp_path / "m.onnx"
        torch.onnx.export(m.decoder, ([torch.randn(1, c, 64 // r, 96 // r) for c, r in
                                      zip(m.encoder.channels, m.encoder.reductions)],), str(path),
                          dynamo=False, input_names=[f"f{i}" for i in range(5)],
                          dynamic_axes={f"f{i}": {2: f"h{i}", 3: f"w{i}"} for i in range(5)})
        return sum(n.op_type == "Shape" for n in onnx.load(str(path)).graph.node)

    assert decoder_shape_ops(model) > 0  # what sizes cost in a graph
    assert decoder_shape_ops(create_model(arch, "efficientnet_lite0", num_classes=4).eval()) == 0


@pytest.mark.parametrize("arch", ["fcn", "unet", "deeplabv3plus", "fpn", "fpn_lite"])
def test_encoders_whose_pyramid_starts_at_stride_4(arch, tmp_path):
    """ConvNeXt-like backbones have no stride-2 map (timm raised IndexError for 5 levels): the
    levels are matched by stride, the missing one is None with 0 channels, and the model trains
    and exports like any other."""
    import numpy as np
    import onnxruntime as ort

    from pixelwise.export import export
    from pixelwise.inference.predictor import Segmenter

    torch.manual_seed(0)
    model = create_model(arch, "test_convnext", num_classes=3)
    assert model.encoder.channels[0] == 0 and model.encoder.reductions == [2, 4, 8, 16, 32]
    x = torch.randn(2, 3, 64, 96)
    out = model(x)
    assert out.shape == (2, 3, 64, 96)
    out.mean().backward()  # every parameter that shapes the output gets a gradient
    assert all(p.grad is not None for p in model.decoder.parameters())
    model.eval()
    seg = Segmenter(model, ["a", "b", "c"], [], 255, "cpu")
    path = export(seg, "onnx", tmp_path / "m.onnx", check=False).path
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    img = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(img).argmax(1).numpy()
    labels = sess.run(["labels"], {"input": img.numpy()})[0]
    assert (labels == ref).mean() > 0.999
    assert np.isfinite(sess.run(["logits"], {"input": img.numpy()})[0]).all()


def test_encoders_without_a_pyramid_are_refused_with_a_reason():
    from pixelwise.models.encoder import _levels_by_stride

    assert _levels_by_stride("x", [4, 8, 16, 32], (0, 1, 2, 3, 4)) == [None, 0, 1, 2, 3]
    with pytest.raises(ModelError, match="strides \\[16, 16, 16\\].*stride 4 is missing"):
        _levels_by_stride("vit", [16, 16, 16], (0, 1, 2, 3, 4))
