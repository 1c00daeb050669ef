"""What a run shows: TensorBoard scalars, image grids, config text and hparams, plus grid PNGs on disk."""

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter


def to_unit(images):
    """[-1, 1] -> [0, 1] for viewing."""
    return images.detach().float().cpu().add(1).div(2).clamp(0, 1)


class Board:
    def __init__(self, run_dir, purge_step=None):
        self.run_dir = Path(run_dir)
        # purge_step drops events a killed run logged after its last checkpoint: no duplicated steps on resume.
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge_step)

    def scalars(self, values, step):
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def grid(self, tag, images, step, png_name=None):
        from torchvision.utils import make_grid, save_image  # torchvision takes seconds to import: only when used

        grid = make_grid(to_unit(images), nrow=8, padding=2)
        self.writer.add_image(tag, grid, step)
        if png_name:
            (self.run_dir / "samples").mkdir(exist_ok=True)
            save_image(grid, self.run_dir / "samples" / png_name)

    def text(self, tag, text):
        # Indented by four spaces, TensorBoard's markdown shows it verbatim.
        self.writer.add_text(tag, "\n".join("    " + line for line in text.splitlines()), 0)

    def hparams(self, hparams, metrics, step):
        self.writer.add_hparams(hparams, metrics, run_name=".", global_step=step)

    def close(self):
        self.writer.close()


def hparams_of(cfg):
    """The knobs worth comparing across runs, as plain numbers and strings."""
    opt = cfg.optimizer
    return {
        "model": cfg.model.name, "loss": cfg.loss.name, "data": cfg.data.name,
        "optimizer": opt.generator._target_.rsplit(".", 1)[-1],
        "lr_g": opt.generator.lr, "lr_d": opt.discriminator.lr,
        "batch_size": cfg.batch_size, "d_steps": cfg.trainer.d_steps, "latent_dim": cfg.latent_dim,
        "steps": cfg.trainer.steps, "seed": cfg.seed,
    }


@torch.no_grad()
def generate(G, z, batch=256):
    """G's output for z in eval mode (batch norm on running statistics), so each image depends on its z only."""
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(chunk) for chunk in z.split(batch)])
    finally:
        G.train(was_training)
