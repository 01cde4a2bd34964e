"""Helper for test_engine: trained under torchrun by 2 processes (gloo on CPU).
Arguments: RUN_DIR [SAM_RHO] (sharpness-aware steps when given)."""
import sys
from pathlib import Path

import torch

from delocate.common.config import TrainConfig
from test_engine import RandomClips, make_model, toy_loss  # tests/ is the script's own folder
from delocate.training.engine import Engine, distributed

run_dir = Path(sys.argv[1])
rank, world = distributed()
cfg = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=4, lr=1e-2, warmup_epochs=0,
                  sam_rho=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
torch.manual_seed(0)
engine = Engine("toy", make_model(), run_dir, cfg, RandomClips(), toy_loss, {"builder": "toy"})
engine.fit()
flat = torch.cat([p.detach().flatten() for p in engine.module.parameters()])
torch.save(flat, run_dir / f"rank{rank}_of_{world}.pt")
