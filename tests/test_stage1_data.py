"""Stage 1 data: training augmentation keeps the part boxes on the parts; the context-mean
reference error; demo splits by person with capped held-out sets."""
import numpy as np
import pytest
import torch

from delocate.models.st_mae import build_st_mae
from delocate.preprocessing.demo_data import assign_splits
from delocate.stage1_recover.recover import recovery_errors
from delocate.training.inputs import augment_clip
from delocate.training.masking import TokenMasker


def _frames_with_bright_boxes(size=224, frames=4):
    """Grey frames whose three part boxes are bright, each box a different size and place."""
    rois = np.array([[40, 60, 110, 90], [90, 100, 150, 150], [70, 160, 160, 190]], np.float32)
    video = np.full((frames, size, size, 3), 60, np.uint8)
    for x0, y0, x1, y1 in rois.astype(int):
        video[:, y0:y1, x0:x1] = 220
    return video, np.repeat(rois[None], frames, axis=0)


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_moves_the_part_boxes_with_the_pixels(seed):
    video, rois = _frames_with_bright_boxes()
    out, out_rois = augment_clip(video, rois, np.random.default_rng(seed), out_size=112)
    assert out.shape == (4, 112, 112, 3) and out.dtype == np.uint8
    assert out_rois.shape == rois.shape and out_rois.min() >= 0 and out_rois.max() <= 112
    brightness = out.mean(axis=-1)
    inside = np.zeros((112, 112), bool)
    for x0, y0, x1, y1 in out_rois[0]:
        # a 2-pixel margin: resampling blurs the box edges
        inside[int(np.ceil(y0)) + 2:int(y1) - 2, int(np.ceil(x0)) + 2:int(x1) - 2] = True
    assert inside.any()
    assert brightness[:, inside].min() > brightness[:, ~inside].mean() + 60
    assert (out_rois == out_rois[:1]).all()  # one draw per clip: every frame moves the same way


def test_context_mean_error_is_zero_for_a_flat_clip_and_positive_otherwise():
    model = build_st_mae("tiny", num_frames=4, img_size=32, patch_size=8)
    masker = TokenMasker("random", model.encoder.grid, 8, 2, 0.5)
    mask, _ = masker(np.zeros((4, 3, 4), np.float32), np.random.default_rng(0))
    flat = torch.full((3, 4, 32, 32), 0.3)
    textured = flat.clone()
    textured[:, :, ::2] = -0.5  # stripes: no single colour fits them
    items = [{"video": flat, "token_mask": torch.from_numpy(mask)},
             {"video": textured, "token_mask": torch.from_numpy(mask)}]  # a dataset: len + []
    _, errors = recovery_errors(model, items, context_mean=True)
    assert errors[0] == pytest.approx(0.0, abs=1e-10)
    assert errors[1] > 0.1


def test_demo_splits_cap_the_held_out_people():
    people = [f"p{i}" for i in range(26)]
    splits = assign_splits(people, 3, seed=0, test_people=3, val_people=2)
    by_person = {p: {splits[(p, s)] for s in range(3)} for p in people}
    assert all(len(v) == 1 for v in by_person.values())  # a person never spans two splits
    counts = {name: sum(v == {name} for v in by_person.values())
              for name in ("train", "val", "test")}
    assert counts == {"train": 21, "val": 2, "test": 3}
    few = assign_splits(people[:6], 3, seed=0, test_people=3, val_people=2)
    assert {few[(p, 0)] for p in people[:6]} == {"train", "val", "test"}
    by_time = assign_splits(people[:2], 3, seed=0)
    assert [by_time[("p0", s)] for s in range(3)] == ["train", "val", "test"]
