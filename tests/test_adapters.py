"""DeepFake-Adapter tuning of the stage-1 encoder: the backbone stays as pretrained."""
import torch
import torch.nn.functional as F

from delocate.models.adapters import DeepFakeAdapterEncoder
from delocate.models.registry import build_clip_classifier
from delocate.models.st_mae import build_st_mae


def test_adapter_tuning_leaves_the_backbone_unchanged_after_a_step():
    torch.manual_seed(0)
    mae = build_st_mae("tiny", num_frames=4, img_size=32)
    classifier = build_clip_classifier("tiny", num_frames=4, img_size=32)
    classifier.load_state_dict(mae.state_dict(), strict=False)
    classifier.encoder = DeepFakeAdapterEncoder(classifier.encoder)
    video = torch.randn(4, 3, 4, 32, 32)
    # at initialization the adapters are silent: same features as the plain pretrained encoder
    plain = build_clip_classifier("tiny", num_frames=4, img_size=32)
    plain.load_state_dict(mae.state_dict(), strict=False)
    classifier.eval(), plain.eval()
    assert torch.allclose(classifier.encoder(video), plain.encoder(video), atol=1e-5)

    classifier.train()
    backbone_before = {k: v.clone() for k, v in classifier.encoder.backbone.state_dict().items()}
    adapters_before = [p.clone() for p in classifier.encoder.gba.parameters()]
    trainable = [p for p in classifier.parameters() if p.requires_grad]
    total = sum(p.numel() for p in classifier.parameters())
    assert 0 < sum(p.numel() for p in trainable) < total
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    for _ in range(2):
        loss = F.binary_cross_entropy_with_logits(classifier(video), torch.tensor([0., 1., 0., 1.]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for key, value in classifier.encoder.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    adapters_after = classifier.encoder.gba.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(adapters_before, adapters_after))


def test_adapter_classifier_rebuilds_from_its_spec():
    built = build_clip_classifier("tiny", num_frames=4, img_size=32, tuning="adapters")
    again = build_clip_classifier("tiny", num_frames=4, img_size=32, tuning="adapters")
    again.load_state_dict(built.state_dict())  # strict: the same keys
    assert isinstance(again.encoder, DeepFakeAdapterEncoder)
