"""The config sections: one dataclass per part of the pipeline, with the defaults that make the CPU
tiny run work, each checking its own values (common/config.py reads YAML + --set into them). Here
the data, release, demo and evaluation sections; the training stages' are in
common/training_sections.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


class ConfigError(ValueError):
    """A config file or override that cannot be applied (exit code 2 in the CLI)."""


def one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass
class PreprocessConfig:
    num_frames: int = 30  # evenly spaced frames sampled per video
    crop_size: int = 224  # side of the square face crop
    margin: float = 1.3  # crop side = margin * larger side of the landmark box
    # face detection runs on the frame scaled so its long side is at most this
    detect_max_side: int = 320
    # dlib HOG upsampling on that scaled frame (finds faces down to ~40 px)
    detect_upsample: int = 1
    # frames where that fast pass finds no face are retried at these [max side, upsampling] passes
    # (a 640x360 frame: faces down to ~40 px, then ~20 px); [] turns escalation off
    detect_escalation: list[list[int]] = field(default_factory=lambda: [[640, 1], [640, 2]])
    min_face_size: int = 24  # narrower detections (source px) are ignored
    max_faces: int = 4  # face tracks kept per video (the main track first; training reads only it)
    min_track_fraction: float = 0.25  # a face other than the main one needs this share of frames
    # ... and the detector's median confidence above this (so does a face only escalation found)
    min_face_score: float = 0.2
    # exact: the evenly spaced frames | keyframe: the nearest cheaply decodable frames | auto:
    # keyframe when the video has at least num_frames / 2 keyframes (preprocessing/video_io.py)
    frame_sampling: str = "auto"
    # larger videos are scaled while decoding (memory; crop_box stays in source px)
    max_decode_side: int = 1920
    mask_threshold: int = 20  # |fake - source| grey level above which a pixel counts as manipulated
    workers: int = 1

    def __post_init__(self) -> None:
        one_of("preprocess.frame_sampling", self.frame_sampling, ("auto", "exact", "keyframe"))
        if self.max_faces < 1:
            raise ConfigError(f"preprocess.max_faces must be >= 1; got {self.max_faces}")
        if any(len(p) != 2 or p[0] < 1 or p[1] < 0 for p in self.detect_escalation):
            raise ConfigError("preprocess.detect_escalation: a list of [max side >= 1, upsampling "
                              f">= 0] pairs; got {self.detect_escalation}")


@dataclass
class SynthConfig:
    methods: list[str] = field(
        default_factory=lambda: ["blend", "part-eyes", "part-mouth", "part-nose", "swap"])
    per_frame_flicker: bool = False  # ablation: independent transform parameters per frame
    # how far (0..1) a parameter may drift per frame, relative to its range
    smoothness: float = 0.15
    seed: int = 0


@dataclass
class PoolConfig:
    """The face pool (preprocessing/face_pool.py): real faces at source resolution for online
    forgery synthesis, and who is held out."""
    crop_size: int = 320  # side of the stored wide face crop
    margin: float = 1.8  # wide crop side = margin x the landmark box (preprocessing uses 1.3)
    frames_per_video: int = 48
    detect_max_side: int = 320
    detect_upsample: int = 1
    max_decode_side: int = 1920
    test_people: int = 6  # people with videos held out for the test videos (never in training)
    val_people: int = 5  # people with videos held out for validation (selection, fusion, threshold)
    image_val_share: float = 0.04  # photo-only people held out for frame-level validation
    seed: int = 0


@dataclass
class OnlineConfig:
    """Online training pairs (training/pairs.py): every real face drawn from the pool is paired with
    a fake made from the same frames, then both take the same path a test video takes."""
    methods: list[str] = field(
        default_factory=lambda: ["blend", "part-eyes", "part-mouth", "part-nose", "swap"])
    # source: forge at a random source resolution | crop: on the final crop
    blend_at: str = "source"
    source_scale: list[float] = field(default_factory=lambda: [0.55, 1.5])  # face crop side at the
    # source, relative to crop_size (log-uniform; never above the footage's own resolution)
    codec: str = "jpeg"  # jpeg | h264 | none: the round trip both classes take after forging
    # JPEG quality (h264: mapped to crf)
    quality: list[int] = field(default_factory=lambda: [50, 98])
    crop_size: int = 224  # preprocessing's face crop, from which models resize (as at test time)
    margin: float = 1.3  # preprocessing's crop margin ...
    margin_jitter: float = 0.08  # ... jittered by this much, and shifted by up to
    shift_jitter: float = 0.03  # this share of the crop: landmark noise of a real detector
    image_share: float = 0.35  # share of pairs from photo-only people (when the pool has them)
    # shares of pairs whose footage is sharpened, blurred, resampled or noised before forging, and
    # whose real face and fake go through one such processing after it (the same on both; never the
    # fixed validation pairs)
    degrade_share: float = 0.0
    post_process_share: float = 0.0
    # share of pairs whose footage is relit around the face before forging (training/relighting.py)
    relight_share: float = 0.0
    # a fake's recipe is drawn again (up to 6 draws) until, on every frame, the mean change inside
    # its mask (largest over colour channels, 0-255, before the codec) is at least this
    min_change: float = 2.0
    val_pairs: int = 192  # fixed validation pairs (frames) from the pool's val people
    val_clips: int = 48  # fixed validation clip pairs (stage 1)
    seed: int = 0
    # the options that change the footage or its processing in a share of the training pairs:
    # each in [0, 1], and all 0 for the fixed validation pairs (training/online_data.py)
    SHARES: ClassVar[tuple[str, ...]] = ("degrade_share", "post_process_share", "relight_share")

    def __post_init__(self) -> None:
        one_of("online.blend_at", self.blend_at, ("source", "crop"))
        one_of("online.codec", self.codec, ("jpeg", "h264", "none"))
        for key, top in (*((share, 1) for share in self.SHARES), ("min_change", 254)):
            if not 0 <= getattr(self, key) <= top:
                raise ConfigError(f"online.{key}: 0 <= value <= {top} (got {getattr(self, key)})")


@dataclass
class ForgeConfig:
    """--stage forge (preprocessing/forge_videos.py): held-out real videos -> forged videos."""
    methods: list[str] = field(
        default_factory=lambda: ["blend", "part-eyes", "part-mouth", "part-nose", "swap"])
    segments: int = 2  # clips per real video, spread over it
    frames: int = 48  # consecutive frames per clip
    crf: int = 20  # H.264 quality of the real and forged videos (../shared/dev-forgeries: 20)
    max_decode_side: int = 1920
    detect_max_side: int = 320
    detect_upsample: int = 1
    seed: int = 0


@dataclass
class ReleaseConfig:
    """--stage release (workflows/release.py): the shipped model, trained from every real person."""
    # folders of real videos / photos (each with a manifest.csv naming people), relative to the
    # repository's parent folder when not absolute
    sources: list[str] = field(default_factory=lambda: [
        "shared/real-faces", "shared/real-faces-2", "shared/real-face-images"])
    dev_set: str = "shared/dev-forgeries"  # third-party forgeries: reported, never used to select
    stage1: bool = False  # also fine-tune the stage-1 clip classifier on online clips


@dataclass
class DemoConfig:
    segments_per_video: int = 3  # real clips cut from each source video by time
    frames_per_clip: int = 16  # frames of each demo clip
    use_real_faces: bool = True  # use ../shared/real-faces when present
    max_real_faces: int = 24  # how many people of those clips the demo takes (one clip each)
    # held-out people (splits by person need >= 5 people); the rest train. Capped rather than a
    # fraction so more people add training data, not evaluation time.
    test_people: int = 3
    val_people: int = 2
    seed: int = 0


@dataclass
class EvalConfig:
    aggregator: str = "mean"  # how frame / clip scores become a video score: mean | max | confident
    # fitted: s1 / s2 / DADF weights fitted on validation videos (evaluation/fusion.py)
    # | mean: the paper's mean of the branches
    fusion: str = "fitted"
    bootstrap: int = 1000  # bootstrap rounds for AUC confidence intervals
    batch_size: int = 8
    # a scored face smaller than this (its landmark box's larger side, source pixels) gets a
    # caution in the report: the model was not shown to work there (0: no caution)
    min_face_px: int = 0
    # the side stage 2 reads each frame at when scoring (0: localize.img_size, the size it trained
    # at). Networks trained on crops resized to 160 px drew better masks when they read the crop at
    # its own 224 px, unresampled (models/release/STUDIES.md, "Read at the crop's own size")
    input_size: int = 0
    # sides for --stage evaluate to choose input_size from (0: the training size): it reads the
    # validation videos at each and keeps the best mean of video AUC and mask IoU, written to the
    # run's config.yaml (empty: input_size as set). Which reading is better moved with the seed
    input_sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        one_of("evaluate.fusion", self.fusion, ("fitted", "mean"))
        for key, sizes in (("input_size", [self.input_size]), ("input_sizes", self.input_sizes)):
            # the U-Net halves its input five times and adds the skips back
            if any(size < 0 or size % 32 for size in sizes):
                raise ConfigError(f"evaluate.{key} {getattr(self, key)}: 0 (the training size) or "
                                  "a multiple of 32")
        one_of("evaluate.aggregator", self.aggregator, ("mean", "max", "confident"))
