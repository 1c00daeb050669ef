"""gan-sample: rebuild G from a checkpoint alone and write a grid PNG (and per-image PNGs or an npz)."""

from pathlib import Path

import hydra
import numpy as np
import torch

from gan_cli import checkpoint, device, models, schema
from gan_cli.board import generate, to_unit
from gan_cli.errors import CheckpointError, EnvironmentProblem, exit_2_on_hydra_errors, report_errors


def generator_from(ckpt, dev, use_ema=True):
    """G in eval mode, built from the checkpoint's stored model settings through the model registry.

    With use_ema and a moving average of G's weights in the checkpoint, that average is G.
    """
    try:
        cfg = ckpt["config"]
        G, _ = models.build(cfg["model"], cfg["latent_dim"], cfg["data"]["channels"], cfg["data"]["image_size"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{ckpt['path']}: its stored config lacks {e}; pass a checkpoint written by gan-train") from None
    if use_ema and ckpt.get("G_ema"):  # the moving average of G's weights, when training kept one
        ema = {k.removeprefix("module."): v for k, v in ckpt["G_ema"].items() if k.startswith("module.")}
        checkpoint.load_weights(G, ema, "G_ema", ckpt["path"])
    else:
        checkpoint.load_weights(G, ckpt["G"], "G", ckpt["path"])
    return G.to(dev).eval(), cfg["latent_dim"]


def load_generator(cfg):
    """(G, latent_dim, checkpoint, device) for gan-sample's and gan-eval's `ckpt`, `device` and `ema` keys."""
    dev = device.pick(cfg.device)
    ckpt = checkpoint.load(cfg.ckpt)
    return (*generator_from(ckpt, dev, cfg.ema), ckpt, dev)


def sample(cfg):
    """Write cfg.n images from cfg.ckpt; returns the output folder."""
    schema.check_sample(cfg)
    G, latent_dim, ckpt, dev = load_generator(cfg)
    # Noise from a CPU generator: the same seed gives the same z on any device.
    z = torch.randn(cfg.n, latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    images = to_unit(generate(G, z.to(dev)))  # (n, C, H, W) in [0, 1]
    from torchvision.utils import save_image  # slow to import; not needed to report a bad input

    out = Path(cfg.out).expanduser() if cfg.out else checkpoint.run_folder(ckpt["path"]) / "generated" / f"seed{cfg.seed}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_image(images, out / "grid.png", nrow=cfg.nrow, padding=2)
        if cfg.format == "png":
            for i, image in enumerate(images):
                save_image(image, out / f"{i:05d}.png")
        elif cfg.format == "npz":
            array = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
            np.savez_compressed(out / "images.npz", images=array)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write to {out} ({e.strerror or e}); choose another out=") from None
    print(f"wrote {cfg.n} images from step {ckpt['step']} of {ckpt['path']} to {out}")
    return out


schema.register()


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.configs", config_name="sample")
@report_errors("gan-sample")
def _main(cfg):
    sample(cfg)


main = exit_2_on_hydra_errors(_main)

if __name__ == "__main__":
    main()
