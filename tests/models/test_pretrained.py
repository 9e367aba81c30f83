from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pixelwise.errors import ModelError
from pixelwise.models import create_model
from pixelwise.models.pretrained import LITE_MEAN, LITE_STD, offline_lite0_classifier

# ImageNet classes 281..285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
CAT_CLASSES = set(range(281, 286))


def _chelsea(mean, std) -> torch.Tensor:
    from skimage.data import chelsea

    x = torch.from_numpy(chelsea()).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_offline_lite0_weights_classify_a_cat():
    model = offline_lite0_classifier()
    with torch.no_grad():
        probs = model(_chelsea(LITE_MEAN, LITE_STD)).softmax(1)[0]
    top = int(probs.argmax())
    assert top in CAT_CLASSES, f"top-1 class {top}"
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


def test_random_weights_do_not_classify_a_cat():
    """The mapping test above can fail: an unmapped network is not confident about cats."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("efficientnet_lite0").eval()
    with torch.no_grad():
        probs = model(_chelsea(LITE_MEAN, LITE_STD)).softmax(1)[0]
    assert float(probs[list(CAT_CLASSES)].sum()) < 0.1


def test_offline_pretrained_encoder_gets_the_packaged_weights():
    seg = create_model("fpn", "efficientnet_lite0", 3, pretrained="offline")
    ref = offline_lite0_classifier().state_dict()
    enc = seg.encoder.model.state_dict()
    assert torch.equal(enc["conv_stem.weight"], ref["conv_stem.weight"])
    assert torch.equal(enc["blocks.5.0.conv_pwl.weight"], ref["blocks.5.0.conv_pwl.weight"])
    assert seg.mean == LITE_MEAN


def test_local_weights_file(tmp_path: Path):
    src = create_model("fpn", "resnet18", 3)
    torch.save(src.encoder.model.state_dict(), tmp_path / "r18.pth")
    model = create_model("unet", "resnet18", 4, pretrained=tmp_path / "r18.pth")
    assert torch.equal(model.encoder.model.state_dict()["conv1.weight"],
                       src.encoder.model.state_dict()["conv1.weight"])


def test_bad_weights_are_explained(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        create_model("fpn", "resnet18", 3, pretrained=tmp_path / "missing.pth")
    torch.save({"x": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="fit only 0/"):
        create_model("fpn", "resnet18", 3, pretrained=tmp_path / "other.pth")
    with pytest.raises(ModelError, match="No offline weights"):
        create_model("fpn", "resnet18", 3, pretrained="offline")
