"""The space-time MAE and the stage-1 classifier: shapes, masked-only loss, key compatibility."""
import pytest
import torch

from delocate.models.classifier import ClipClassifier
from delocate.models.registry import build_clip_classifier
from delocate.models.st_mae import build_st_mae, sincos_3d


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_shapes_through_the_mae(size):
    torch.manual_seed(0)
    model = build_st_mae(size, num_frames=4, img_size=32, patch_size=16)
    video = torch.randn(2, 3, 4, 32, 32)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, [0, 3, 5]] = True
    loss, pred = model(video, mask)
    assert pred.shape == (2, 8, 2 * 16 * 16 * 3)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.patchify(video).shape == (2, 8, 1536)
    assert torch.equal(model.unpatchify(model.patchify(video)), video)
    assert model.encoder(video, mask).shape == (2, 5, model.encoder.embed_dim)


def test_loss_ignores_visible_patches():
    torch.manual_seed(0)
    model = build_st_mae("tiny", num_frames=4, img_size=32)
    video = torch.randn(1, 3, 4, 32, 32)
    mask = torch.tensor([[True, False, False, False, True, False, False, False]])
    loss, pred = model(video, mask)
    # the loss equals the MSE over masked patches only
    per_patch = ((pred - model.patchify(video)) ** 2).mean(-1)
    assert torch.allclose(loss, per_patch[mask].mean())
    recovered = model.recover(video, mask)
    visible = ~mask[0]
    assert torch.allclose(model.patchify(recovered)[0, visible], model.patchify(video)[0, visible])


def test_position_embedding_is_fixed_and_distinct():
    embed = sincos_3d(192, 4, 7, 7)
    assert embed.shape == (196, 192)
    assert torch.unique(embed, dim=0).shape[0] == 196


def test_classifier_loads_the_mae_with_only_the_head_missing():
    mae = build_st_mae("tiny", num_frames=4, img_size=32)
    classifier = build_clip_classifier("tiny", num_frames=4, img_size=32)
    result = classifier.load_state_dict(mae.state_dict(), strict=False)
    assert set(result.missing_keys) == ClipClassifier.head_keys()
    assert all(not k.startswith("encoder.") for k in result.unexpected_keys)
    assert classifier(torch.randn(3, 3, 4, 32, 32)).shape == (3,)


def test_finetune_asserts_that_only_the_head_is_missing(tmp_path):
    from delocate.common.io import save_checkpoint
    from delocate.stage1_recover.finetune import PretrainedKeysError, load_pretrained_encoder

    mae = build_st_mae("tiny", num_frames=4, img_size=32)
    save_checkpoint(tmp_path / "mae.safetensors", mae.state_dict(), {"builder": "st_mae"})
    classifier = build_clip_classifier("tiny", num_frames=4, img_size=32)
    load_pretrained_encoder(classifier, tmp_path / "mae.safetensors")
    assert torch.equal(classifier.encoder.blocks[0].attn.qkv.weight,
                       mae.encoder.blocks[0].attn.qkv.weight)

    broken = {k: v for k, v in mae.state_dict().items() if k != "encoder.norm.weight"}
    save_checkpoint(tmp_path / "broken.safetensors", broken, {"builder": "st_mae"})
    with pytest.raises(PretrainedKeysError, match="encoder.norm.weight"):
        load_pretrained_encoder(build_clip_classifier("tiny", num_frames=4, img_size=32),
                                tmp_path / "broken.safetensors")
