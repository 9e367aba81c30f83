"""BatchNorm folding for inference: same outputs, no BatchNorm left where it can go, refused where
a conv's output is read by something else too."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.models import create_model
from pixelwise.models.fuse import fold_batchnorm


def _trained_like(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and affine terms far from the identity, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("arch", ["fcn", "unet", "deeplabv3plus", "fpn", "fpn_lite"])
@pytest.mark.parametrize("encoder", ["efficientnet_lite0", "resnet18"])
def test_folded_models_give_the_same_outputs(arch, encoder):
    model = _trained_like(create_model(arch, encoder, num_classes=5))
    before = _batchnorms(model)
    folded, n = fold_batchnorm(model, torch.randn(1, 3, 64, 96))
    assert n > 0 and folded is not model and _batchnorms(model) == before  # the original is untouched
    assert _batchnorms(folded) == before - n
    if encoder == "efficientnet_lite0" and arch == "fpn_lite":
        assert _batchnorms(folded) == 0
    x = torch.randn(2, 3, 77, 101)  # another size and batch than the sample
    with torch.no_grad():
        a, b = model(x), folded(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


class _ConvReadTwice(nn.Module):
    """conv -> bn, and the conv's output also added back: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_conv_output_read_elsewhere_is_not_folded():
    model = _trained_like(_ConvReadTwice())
    folded, n = fold_batchnorm(model, torch.randn(1, 3, 16, 16))
    assert folded is model and n == 0 and isinstance(model.bn, nn.BatchNorm2d)


def test_training_models_are_refused():
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(create_model("fpn_lite", "resnet18", 3).train(), torch.randn(1, 3, 64, 64))


def test_checkpoints_load_folded_with_the_same_predictions(tiny_run):
    from pixelwise.engine.checkpoint import load_checkpoint, load_model_weights
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.models.registry import build_from_spec

    seg = Segmenter.load(tiny_run.best, device="cpu")
    assert _batchnorms(seg.model) == 0
    ckpt = load_checkpoint(tiny_run.best)
    plain = build_from_spec(ckpt["model_spec"])
    load_model_weights(plain, ckpt, tiny_run.best)
    assert _batchnorms(plain) > 0
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        a, b = plain.eval()(x), seg.model(x.contiguous(memory_format=torch.channels_last))
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.999
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
