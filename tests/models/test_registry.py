import pytest
import torch

from pixelwise.errors import ModelError
from pixelwise.models import create_model, list_models
from pixelwise.models.registry import count_parameters


def test_registry_has_the_promised_architectures():
    assert {"fcn", "unet", "deeplabv3plus", "fpn"} <= set(list_models())


@pytest.mark.parametrize("arch", ["fcn", "unet", "deeplabv3plus", "fpn"])
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
