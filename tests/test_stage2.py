"""Stage 2: network shapes and ablation switches, the torch.func meta step, meta splits."""
import numpy as np
import pytest
import torch

from delocate.common.config import ConfigError, load_config
from delocate.meta.splits import split_by_method
from delocate.meta.step import meta_step_loss
from delocate.models.stage2_net import Stage2Net
from delocate.stage2_localize.localize import ENCODER, batch_at, make_loss, optimizer_factory
from delocate.stage2_localize.losses import loc_loss, pair_loss, stage2_loss
from delocate.stage2_localize.validation import validation_metrics
from delocate.training.inputs import ClipRow

ABLATIONS = [dict(), dict(use_mapping=False), dict(use_localizer=False)]


def batch(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.7).float()
    return {"input": torch.randn(n, 3, size, size, generator=g), "mask": mask,
            "label": torch.tensor([0.0, 1.0] * (n // 2)),
            "recovered": torch.randn(n, 3, 16, 16, generator=g)}


@pytest.mark.parametrize("switches", ABLATIONS)
def test_shapes_and_a_training_step_for_each_ablation(switches):
    torch.manual_seed(0)
    model = Stage2Net(map_size=16, **switches)
    data = batch()
    out = model(data["input"])
    assert out["mask_logits"].shape == (4, 1, 64, 64)
    assert out["cls_logit"].shape == (4,)
    assert ("mapped" in out) == switches.get("use_mapping", True)
    if "mapped" in out:
        assert out["mapped"].shape == (4, 3, 16, 16)
    loss, parts = stage2_loss(out, data)
    assert set(parts) == ({"cls", "loc", "map"} if "mapped" in out else {"cls", "loc"})
    before = [p.detach().clone() for p in model.parameters()]
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("scale", [0.25, 1.0])
def test_the_encoder_learns_at_its_share_of_the_learning_rate(scale):
    torch.manual_seed(0)
    model, data = Stage2Net(map_size=16, use_mapping=False), batch()
    cfg = load_config(None, ["localize.lr=0.01", "localize.weight_decay=0",
                             f"localize.encoder_lr_scale={scale}"]).localize
    optimizer = optimizer_factory(cfg)(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    stage2_loss(model(data["input"]), data)[0].backward()
    optimizer.step()

    def largest_step(in_encoder: bool) -> float:  # Adam's first step: lr x sign of the gradient
        return max((p.detach() - before[name]).abs().max().item()
                   for name, p in model.named_parameters()
                   if name.startswith(ENCODER) == in_encoder)
    assert largest_step(True) == pytest.approx(0.01 * scale, rel=0.01)
    assert largest_step(False) == pytest.approx(0.01, rel=0.01)
    assert len(optimizer.param_groups) == (1 if scale == 1 else 2)  # old runs' states resume
    with pytest.raises(ConfigError, match="localize.encoder_lr_scale"):
        load_config(None, ["localize.encoder_lr_scale=0"])


def test_no_mapping_and_no_localizer_is_refused():
    with pytest.raises(ValueError):
        Stage2Net(use_mapping=False, use_localizer=False)


def test_avgmax_pooling_adds_the_maximum_beside_the_average():
    from delocate.models.localizer import Localizer

    torch.manual_seed(0)
    avg, avgmax = Localizer(in_channels=3), Localizer(in_channels=3, cls_pool="avgmax")
    avgmax.load_state_dict(avg.state_dict())  # same weights: only the pooling differs
    assert avgmax.feature_dim == 2 * avg.feature_dim
    face = torch.randn(1, 3, 64, 64)
    _, pooled = avgmax.eval()(face)
    _, pooled_avg = avg.eval()(face)
    half = avg.feature_dim
    assert torch.allclose(pooled[:, :half], pooled_avg)  # the average is kept as it was
    deepest = avgmax.unet.encoder(face)[-1]
    assert torch.allclose(pooled[:, half:], deepest.amax(dim=(2, 3)))
    net = Stage2Net(map_size=16, use_mapping=False, cls_pool="avgmax")
    assert net(face)["cls_logit"].shape == (1,)
    with pytest.raises(ValueError):
        Localizer(in_channels=3, cls_pool="median")


def test_pair_loss_ranks_each_fake_against_its_own_real():
    label, index = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([10, 11, 12, 13])
    ranked = torch.tensor([-1.0, 1.0, 3.0, 5.0])  # each fake above its own real, not above all
    swapped = torch.tensor([1.0, -1.0, 5.0, 3.0])
    assert pair_loss(ranked, label, index) < pair_loss(swapped, label, index)
    # a whole pair shifted up or down (a person's faces scored high as a whole) costs nothing
    assert torch.isclose(pair_loss(ranked + torch.tensor([7.0, 7.0, 0, 0]), label, index),
                         pair_loss(ranked, label, index))
    out = {"cls_logit": ranked, "mask_logits": torch.zeros(4, 1, 8, 8)}
    data = {"label": label, "index": index, "mask": torch.zeros(4, 1, 8, 8)}
    assert "pair" in stage2_loss(out, data, w_pair=1.0)[1]
    assert "pair" not in stage2_loss(out, data)[1]
    with pytest.raises(ValueError, match="online pairs"):  # not pairs: a cache's frames
        pair_loss(ranked, label, torch.tensor([10, 12, 11, 13]))
    with pytest.raises(ValueError, match="online pairs"):
        pair_loss(ranked, torch.tensor([1.0, 0.0, 0.0, 1.0]), index)


def test_the_pair_loss_is_refused_up_front_without_a_face_pool(tmp_path):
    from delocate.common.config import Config
    from delocate.stage2_localize.localize import run_localize

    config = Config()
    config.localize.w_pair = 1.0
    with pytest.raises(ValueError, match="face pool"):
        run_localize(tmp_path / "cache", tmp_path / "run", config)
    assert not (tmp_path / "run").exists()  # refused before the run dir was made


def test_localization_losses():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    good, bad = target * 20 - 10, -(target * 20 - 10)
    for kind in ("mse", "bce_dice"):
        assert loc_loss(good, target, kind) < loc_loss(bad, target, kind)


def test_multi_scale_training_feeds_each_side_in_turn_with_its_own_mask():
    config = load_config(None, ["localize.meta=false", "localize.use_mapping=false",
                                "localize.loc_loss=bce_dice", "localize.train_sizes=[32,64,96]"])
    model = Stage2Net(use_mapping=False, decoder_channels=[32, 16, 16, 16, 16])
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    step = make_loss(config.localize)
    data = batch(size=64)
    for _ in range(4):
        loss, _ = step(model, data)
        assert torch.isfinite(loss)
    assert seen == [32, 64, 96, 32]
    # the mask follows its face: binary, with the forged share kept (the same square at each side)
    square = torch.zeros(2, 1, 64, 64)
    square[..., 16:48, 16:48] = 1
    for side in (32, 96):
        resized = batch_at({"input": torch.randn(2, 3, 64, 64), "mask": square}, side)
        assert resized["input"].shape == (2, 3, side, side) and resized["mask"].shape[-1] == side
        assert set(resized["mask"].unique().tolist()) == {0.0, 1.0}
        assert resized["mask"].mean() == pytest.approx(0.25, abs=0.02)
    assert batch_at(data, 64) is data


def _loss_of(out, data):
    return stage2_loss(out, data)[0]


def _update(model, total):
    grads = torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad],
                                allow_unused=True)
    return [torch.zeros(()) if g is None else g for g in grads]


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_step_differs_from_plain_step_and_equals_it_at_zero_weight(first_order):
    torch.manual_seed(0)
    model = Stage2Net(map_size=16).eval()  # eval: BatchNorm uses running stats, so both agree
    train, test = batch(seed=1), batch(seed=2)
    plain = _update(model, _loss_of(model(train["input"]), train))
    meta_total, parts = meta_step_loss(model, _loss_of, train, test, inner_lr=0.1,
                                       test_weight=1.0, first_order=first_order)
    meta = _update(model, meta_total)
    assert parts["meta_test"] > 0
    assert any(not torch.allclose(a, b) for a, b in zip(plain, meta))
    zero_total, _ = meta_step_loss(model, _loss_of, train, test, inner_lr=0.1, test_weight=0.0)
    for a, b in zip(plain, _update(model, zero_total)):
        assert torch.allclose(a, b)


def test_second_order_differs_from_first_order():
    torch.manual_seed(0)
    model = Stage2Net(map_size=16).eval()
    train, test = batch(seed=1), batch(seed=2)
    second = _update(model, meta_step_loss(model, _loss_of, train, test, 0.1)[0])
    first = _update(model, meta_step_loss(model, _loss_of, train, test, 0.1, first_order=True)[0])
    assert any(not torch.allclose(a, b) for a, b in zip(first, second))


def _clips(methods_per_source, sources):
    methods, srcs, labels = [], [], []
    for source in sources:
        methods.append("real"), srcs.append(source), labels.append(0)
        for method in methods_per_source:
            methods.append(method), srcs.append(source), labels.append(1)
    return methods, srcs, labels


@pytest.mark.parametrize("seed", range(10))
def test_meta_split_never_puts_a_type_on_both_sides(seed):
    methods, sources, labels = _clips(["blend", "part-eyes", "part-mouth", "part-nose"],
                                      [f"p{i}" for i in range(6)])
    split = split_by_method(methods, sources, labels, np.random.default_rng(seed))
    train_types = {methods[i] for i in split.train if labels[i] == 1}
    test_types = {methods[i] for i in split.test if labels[i] == 1}
    assert train_types and test_types and not train_types & test_types
    assert sorted(split.train + split.test) == list(range(len(methods)))
    # each real source sits on exactly one side, whole
    for source in set(sources):
        sides = {("train" if i in split.train else "test") for i in range(len(methods))
                 if sources[i] == source and labels[i] == 0}
        assert len(sides) == 1


@pytest.mark.parametrize("seed", range(10))
def test_single_method_split_keeps_fakes_with_their_source(seed):
    methods, sources, labels = _clips(["blend"], [f"p{i}" for i in range(10)])
    split = split_by_method(methods, sources, labels, np.random.default_rng(seed))
    train_sources = {sources[i] for i in split.train}
    test_sources = {sources[i] for i in split.test}
    assert not train_sources & test_sources
    assert len(train_sources) == 7 and len(test_sources) == 3


class _MaskEchoNet(torch.nn.Module):
    """Reads the answer off its input: channel 0 is the mask, channel 1 the label."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # frame_outputs asks for a device

    def forward(self, x):
        return {"mask_logits": 20 * (x[:, :1] - 0.5),
                "cls_logit": 10 * (x[:, 1].mean((1, 2)) - 0.5)}


class _Frames:
    """The parts of FrameDataset that validation_metrics reads: labels, [i] -> input, mask."""

    def __init__(self, size=32):
        rng = np.random.default_rng(0)
        self.rows = [ClipRow(f"c{i}", i % 2, "blend" if i % 2 else "real", "val", f"c{i}")
                     for i in range(6)]
        self.items = [(r, k) for r in range(6) for k in range(2)]
        self.labels = np.array([self.rows[r].label for r, _ in self.items])
        self.data = []
        for r, _ in self.items:
            mask = np.zeros((1, size, size), np.float32)
            if self.rows[r].label:
                y, x = rng.integers(0, size - 8, 2)
                mask[0, y:y + 8, x:x + 8] = 1
            label = np.full((size, size), float(self.rows[r].label), np.float32)
            image = np.stack([mask[0], label, np.zeros_like(label)])
            self.data.append({"input": torch.from_numpy(image), "mask": torch.from_numpy(mask)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.data[index]


def test_validation_metrics_score_a_perfect_model_as_perfect():
    metrics = validation_metrics(_MaskEchoNet(), _Frames())
    assert metrics["val_auc"] == pytest.approx(1.0)
    assert metrics["val_iou"] == pytest.approx(1.0)
    assert metrics["val_select"] == pytest.approx(1.0)
