"""gan-sample: rebuild G from a checkpoint alone and write a grid PNG (and per-image PNGs or an npz)."""

from pathlib import Path

from gan_cli import cli


def generator_from(ckpt, dev, use_ema=True, named_generator=None, trust_code=False):
    """G in eval mode, built from the checkpoint's stored model settings through the model registry.

    With use_ema and a moving average of G's weights in the checkpoint, that average is G. A custom G's class
    is imported only if `named_generator` (the user's `generator=`) is the path the checkpoint names, or with
    trust_code.
    """
    from gan_cli import checkpoint, data, models
    from gan_cli.errors import CheckpointError
    from gan_cli.models import custom

    try:
        cfg = ckpt["config"]
        custom.require_consent(cfg["model"], ["generator"], {"generator": named_generator}, trust_code, ckpt["path"],
                               for_sampling=True)
        G = models.generator(cfg["model"], cfg["latent_dim"], data.sample_shape(cfg["data"]))
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
    from gan_cli import checkpoint, device

    dev = device.pick(cfg.device)
    ckpt = checkpoint.load(cfg.ckpt)
    return (*generator_from(ckpt, dev, cfg.ema, cfg.generator, cfg.trust_code), ckpt, dev)


def sample(cfg):
    """Write cfg.n samples from cfg.ckpt; returns the output folder."""
    import numpy as np
    import torch

    from gan_cli import board, schema, toy
    from gan_cli.errors import EnvironmentProblem
    from gan_cli.run_folder import containing_run

    schema.check_sample(cfg)
    G, latent_dim, ckpt, dev = load_generator(cfg)
    # Noise from a CPU generator: the same seed gives the same z on any device.
    z = torch.randn(cfg.n, latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    fake = board.generate(G, z.to(dev)).cpu()
    out = Path(cfg.out).expanduser() if cfg.out else containing_run(ckpt["path"]) / "generated" / f"seed{cfg.seed}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if toy.is_toy(ckpt["config"]["data"]):  # points: a scatter over the real data, and their coordinates
            real, _ = toy.points(ckpt["config"]["data"]["name"], train=False)
            board.scatter_png(out / "scatter.png", fake, real, f"step {ckpt['step']}")
            if cfg.format == "npz":
                np.savez_compressed(out / "points.npz", points=fake.numpy())
        else:
            _write_images(board.signed_to_unit(fake), out, cfg)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write to {out} ({e.strerror or e}); choose another out=") from None
    print(f"wrote {cfg.n} samples from step {ckpt['step']} of {ckpt['path']} to {out}")
    return out


def _write_images(images, out, cfg):
    """grid.png, and with format=png one PNG per image, with format=npz images.npz (uint8, N x H x W x C)."""
    import numpy as np
    import torch

    from gan_cli.board import save_png, tile

    save_png(tile(images, cfg.nrow), out / "grid.png")
    if cfg.format == "png":
        for i, image in enumerate(images):
            save_png(image, out / f"{i:05d}.png")
    elif cfg.format == "npz":
        array = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        np.savez_compressed(out / "images.npz", images=array)


main = cli.command("gan-sample", "sample", sample)

if __name__ == "__main__":
    main()
