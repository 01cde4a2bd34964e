"""The training stages on online pairs from a face pool (tiny, CPU)."""
import json
import shutil

import pytest
import torch

from delocate.common.io import load_checkpoint, save_checkpoint
from delocate.evaluation.detector import Detector
from delocate.evaluation.fusion import Fusion
from delocate.workflows.export import export_run

from delocate.common.config import OnlineConfig, load_config
from delocate.stage1_recover.finetune import run_finetune
from delocate.stage2_localize.dadf_train import run_dadf
from delocate.stage2_localize.localize import run_localize
from delocate.training.online_data import OnlineFrames, online_sets

TINY_LOCALIZER = [
    "localize.encoder=tu-tf_efficientnet_lite0", "localize.encoder_weights=imagenet",
    "localize.decoder_channels=[32,16,16,16,16]", "localize.img_size=64",
    "localize.use_mapping=false", "localize.loc_loss=bce_dice", "localize.w_loc=5",
    "localize.batch_size=8", "localize.lr=1e-3", "localize.warmup_epochs=0",
    "online.quality=[70,95]",
]


def _epochs(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tiny_pool, tmp_path_factory):
    config = load_config(None, TINY_LOCALIZER + ["localize.meta=false", "localize.epochs=4",
                                                 "localize.steps_per_epoch=16"])
    run = tmp_path_factory.mktemp("online") / "run"
    return run, run_localize(tiny_pool, run, config)


def test_a_short_run_on_online_pairs_lowers_the_loss(trained):
    run, summary = trained
    losses = [e["train_loss"] for e in _epochs(run)]
    # batch 8 on two people: one epoch's loss is noisy, so the better of the last two counts
    assert len(losses) == 4 and min(losses[-2:]) < 0.85 * losses[0], losses
    assert (run / "localize_best.safetensors").is_file()
    assert summary["train_methods"] == ["blend", "part-eyes", "part-mouth", "part-nose", "swap"]


def test_export_packs_the_run_in_fp16_without_branches_fusion_dropped(trained, tmp_path):
    run, _ = trained
    (run / "threshold.json").write_text(json.dumps({"threshold": 0.5, "chosen_on": "val"}))
    Fusion("fitted", {"s1": 0.0, "s2": 1.5}, 0.1, "val", ["s1", "s2"]).save(run / "fusion.json")
    tensors, sidecar = load_checkpoint(run / "localize_best.safetensors")
    save_checkpoint(run / "finetune_best.safetensors", {"w": torch.ones(2)}, {"builder": "x"})
    out = export_run(run, tmp_path / "shipped")
    assert not (out / "finetune_best.safetensors").exists()  # fusion weight 0: left out
    shipped, shipped_sidecar = load_checkpoint(out / "localize_best.safetensors")
    assert shipped.keys() == tensors.keys() and shipped_sidecar["dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in shipped.values() if v.is_floating_point())
    assert Detector(out).fusion.weights == {"s1": 0.0, "s2": 1.5}


def test_a_run_can_start_from_a_trained_checkpoint(trained, tiny_pool, tmp_path):
    run, _ = trained
    start = run / "localize_best.safetensors"
    # lr 0: the weights stay what was loaded (BatchNorm statistics still move, so they are left out)
    config = load_config(None, TINY_LOCALIZER + ["localize.meta=false", "localize.epochs=1",
                                                 "localize.steps_per_epoch=2", "localize.lr=0",
                                                 f"localize.init_from={start}"])
    run_localize(tiny_pool, tmp_path / "more", config)
    (before, _), (after, _) = load_checkpoint(start), load_checkpoint(tmp_path / "more" /
                                                                      "localize_last.safetensors")
    learned = [k for k in before if "running_" not in k and "num_batches" not in k]
    assert len(learned) > 50 and all(torch.equal(before[k], after[k]) for k in learned)
    other = load_config(None, TINY_LOCALIZER + ["localize.decoder_channels=[16,16,16,16,16]",
                                                f"localize.init_from={start}"])
    with pytest.raises(ValueError, match="not the stage2_net"):
        run_localize(tiny_pool, tmp_path / "other", other)


def test_online_meta_learning_and_endless_data_need_steps(tiny_pool, tmp_path):
    config = load_config(None, TINY_LOCALIZER + ["localize.meta=true", "localize.first_order=true",
                                                 "localize.epochs=1", "localize.steps_per_epoch=2"])
    run_localize(tiny_pool, tmp_path / "meta", config)
    assert len(_epochs(tmp_path / "meta")) == 1
    endless = load_config(None, TINY_LOCALIZER + ["localize.steps_per_epoch=0"])
    with pytest.raises(ValueError, match="endless"):
        run_localize(tiny_pool, tmp_path / "endless", endless)


def test_the_mapping_target_needs_a_cache(tiny_pool, tmp_path):
    config = load_config(None, TINY_LOCALIZER[:-2] + ["localize.use_mapping=true",
                                                      "localize.steps_per_epoch=2"])
    with pytest.raises(ValueError, match="recovered faces"):
        run_localize(tiny_pool, tmp_path / "run", config)


def test_stage1_fine_tunes_on_online_clips(tiny_pool, tmp_path):
    config = load_config(None, ["recover.num_frames=4", "recover.img_size=32",
                                "finetune.epochs=1", "finetune.steps_per_epoch=3",
                                "finetune.batch_size=4"])
    run_finetune(tiny_pool, tmp_path / "run", config)
    assert (tmp_path / "run" / "finetune_best.safetensors").is_file()


def test_the_dadf_head_trains_on_online_pairs(tiny_pool, tmp_path):
    config = load_config(None, ["localize.img_size=64", "dadf.img_size=64", "dadf.epochs=1",
                                "dadf.steps_per_epoch=2", "dadf.batch_size=4"])
    summary = run_dadf(tiny_pool, tmp_path / "run", config)
    assert (tmp_path / "run" / "dadf_best.safetensors").is_file() and summary["trainable_share"] > 0


def test_the_fixed_validation_pairs_are_made_with_every_footage_share_off(tiny_pool, tmp_path):
    """Checkpoints are chosen on the same clean validation items whatever the training pairs'
    degradations, processing and light (a share missed here would change them silently)."""
    pool = shutil.copytree(tiny_pool, tmp_path / "pool")
    index = json.loads((pool / "index.json").read_text())
    for source in index["sources"]:  # the photo's person validates, the video's trains
        source["split"] = "val" if source["person"] == "astronaut" else "train"
    (pool / "index.json").write_text(json.dumps(index))
    config = load_config(None, ["online.methods=[blend]"]
                         + [f"online.{share}=1.0" for share in OnlineConfig.SHARES])
    made = []

    def make(maker, seed):
        made.append(maker)
        return OnlineFrames(maker, 64, seed=seed)
    _, val, _, _ = online_sets(pool, config, make, seed=0, val_pairs=1)
    train_maker, val_maker = made
    assert val_maker.pool.people == ["astronaut"] and len(val) == 2
    assert {share: getattr(train_maker.cfg, share) for share in OnlineConfig.SHARES} == \
        dict.fromkeys(OnlineConfig.SHARES, 1.0)
    assert {share: getattr(val_maker.cfg, share) for share in OnlineConfig.SHARES} == \
        dict.fromkeys(OnlineConfig.SHARES, 0.0)
