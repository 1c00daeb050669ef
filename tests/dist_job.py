"""Run by torchrun in test_dist: train() on a composed config, then save this rank's weights for comparison.

    python -m torch.distributed.run --nproc_per_node=2 tests/dist_job.py RUN_DIR OUT_DIR override ...
"""

import os
import sys

import torch
from hydra import compose, initialize_config_module

from gan_cli.train import train

if __name__ == "__main__":
    run_dir, out, *overrides = sys.argv[1:]
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        s = train(compose("train", overrides=overrides), run_dir, overrides)
    torch.save({"G": s.G.state_dict(), "D": s.D.state_dict(), "step": s.step},
               os.path.join(out, f"rank{os.environ.get('RANK', 0)}.pt"))
