"""The DADF head at the tiny size: shapes, what is frozen, RGA's L_rec, adapter variants, SAM
checkpoint loading with the position embedding resized."""
import pytest
import torch

from delocate.models.dadf import ADAPTER_VARIANTS, DADF, MultiscaleAdapter, dadf_loss


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    return DADF("vit_tiny", img_size=224)


def test_shapes_and_gradients_through_the_whole_head(head):
    head.train()
    head.zero_grad()
    image = torch.randn(2, 3, 128, 128)
    labels = torch.tensor([0.0, 1.0])
    mask = torch.zeros(2, 1, 128, 128)
    mask[1, :, 40:90, 30:100] = 1
    out = head(image, labels)
    assert out["mask_logits"].shape == (2, 1, 128, 128)
    assert out["cls_logit"].shape == (2,)
    loss, parts = dadf_loss(out, mask, labels)
    assert set(parts) == {"seg", "rec", "cls"} and parts["rec"] > 0
    loss.backward()
    # SAM's encoder (and the null-prompt encoder) get no gradient ...
    assert all(p.grad is None for p in head.image_encoder.parameters())
    assert all(p.grad is None for p in head.prompt_encoder.parameters())
    # ... the adapters, the RGA enhancer, the decoder and the heads do
    for module in (head.adapters, head.enhancer, head.mask_decoder, head.task_head, head.cls_head):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), module


def test_reconstruction_loss_counts_real_samples_only(head):
    head.train()
    fakes_only = head(torch.randn(2, 3, 64, 64), torch.tensor([1.0, 1.0]))
    assert fakes_only["rec_loss"].item() == 0.0
    with_real = head(torch.randn(2, 3, 64, 64), torch.tensor([0.0, 1.0]))
    assert with_real["rec_loss"].item() > 0.0


def test_eval_is_deterministic(head):
    head.eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = head(image), head(image)
    assert torch.equal(a["mask_logits"], b["mask_logits"])


@pytest.mark.parametrize("variant", sorted(ADAPTER_VARIANTS))
def test_adapter_variants_build_and_start_as_identity(variant):
    adapter = MultiscaleAdapter(dim=32, hidden=8, variant=variant).eval()
    tokens = torch.randn(2, 6, 6, 32)
    assert torch.allclose(adapter(tokens), tokens, atol=1e-6)  # zero expansion + identity residual
    branches = len(ADAPTER_VARIANTS[variant]["branches"])
    assert adapter.expand.in_channels == 8 * branches


def test_a_sam_vit_b_state_dict_loads_at_a_small_size(capsys):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"](checkpoint=None)  # random weights, official layout (1024 px)
    head = DADF("vit_b", img_size=224)
    head.load_sam_state_dict(sam.state_dict())
    assert torch.equal(head.image_encoder.blocks[3].attn.qkv.weight,
                       sam.image_encoder.blocks[3].attn.qkv.weight)
    assert head.image_encoder.pos_embed.shape == (1, 14, 14, 768)
    trainable, total, share = head.trainable_share()
    print(f"DADF vit_b: {trainable:,} trainable of SAM's {total:,} parameters ({share:.2%})")
    assert 0.15 < share < 0.22  # the paper reports 18.64%
    assert "trainable of SAM's" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not a SAM checkpoint"):
        head.load_sam_state_dict({"something": torch.zeros(1)})
