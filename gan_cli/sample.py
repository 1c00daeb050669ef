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
        G = models.generator(cfg["model"], cfg["latent_dim"], data.sample_shape(cfg["data"]), ckpt.get("num_classes"))
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
    """Write cfg.n samples from cfg.ckpt (or, with mode=interpolate, walks between seeds); returns the folder."""
    from gan_cli import board, latent, schema, toy
    from gan_cli.run_folder import containing_run

    schema.check_sample(cfg)
    if cfg.mode == "augment":  # the data and the augmentation alone: no G to build
        return _augmented(cfg)
    if cfg.mode == "progress":  # the run's own sample grids: no G either
        return _progress(cfg)
    G, latent_dim, ckpt, dev = load_generator(cfg)
    data_cfg, step, num_classes = ckpt["config"]["data"], ckpt["step"], ckpt.get("num_classes")
    labels = latent.Labels(cfg.label, num_classes)
    default = containing_run(ckpt["path"]) / "generated" / (f"seed{cfg.seed}{labels.folder_suffix}"
                                                            if cfg.mode == "sample" else "interpolate")
    out = Path(cfg.out).expanduser() if cfg.out else default
    if cfg.mode == "interpolate":
        seeds = _interpolate(cfg, G, latent_dim, labels, data_cfg, dev, out)
        print(f"wrote interpolations between seeds {seeds} from step {step} of {ckpt['path']} to {out}")
        _print_dataset(ckpt)
        return out
    z, y = labels.for_samples(cfg.n, latent_dim, cfg.seed, cfg.truncation, cfg.nrow)
    fake = board.generate(G, z.to(dev), y).cpu()
    if toy.is_toy(data_cfg):  # points: a scatter over the real data, and their coordinates
        _write(lambda: _write_points(fake, data_cfg, step, out, cfg), out)
    else:
        _write(lambda: _write_images(board.signed_to_unit(fake), out, cfg), out)
    print(f"wrote {len(fake)} samples{labels.described} from step {step} of {ckpt['path']} to {out}")
    _print_dataset(ckpt)
    return out


def _print_dataset(ckpt):
    """Which prepared image folder the checkpoint trained on (gan-eval scores against its held-out part)."""
    d = ckpt.get("dataset")
    if d:
        print(f"trained on {d['source']}: {d['count']:,} images of {'x'.join(map(str, d['shape']))}, "
              f"prepared set {d['manifest']}")


def _augmented(cfg):
    """grid.png: n training images of the checkpoint's run as D sees them through its augmentation (ADA at p,
    by default the checkpoint's), in rows of nrow; real.png: the same images as they are."""
    from omegaconf import OmegaConf

    from gan_cli import augment, board, checkpoint, data
    from gan_cli.errors import ConfigError
    from gan_cli.run_folder import containing_run

    ckpt = checkpoint.load(cfg.ckpt)
    config = ckpt["config"]
    aug_cfg = OmegaConf.create(config.get("augment") or {"name": "none"})
    if aug_cfg.name == "none":
        raise ConfigError(f"mode=augment shows images through the run's augmentation, and {ckpt['path']} trained "
                          "with none; train with augment=diffaugment or augment=ada")
    images, _ = data.load_labeled(data.config_from(config["data"]), train=True, record=ckpt.get("dataset"))
    real = data.uint8_to_signed(images[data.preview_indices(len(images), cfg.n)])
    p = cfg.p if cfg.p is not None else float(ckpt["augment"]["p"])  # ADA's; DiffAugment has none
    seen = augment.preview(aug_cfg, real, p, cfg.seed)
    out = Path(cfg.out).expanduser() if cfg.out else containing_run(ckpt["path"]) / "generated" / "augment"

    def write():
        for images, name in ((seen, "grid.png"), (real, "real.png")):
            board.save_png(board.tile(board.signed_to_unit(images), cfg.nrow), out / name)

    _write(write, out)
    print(f"wrote {len(seen)} training images as D sees them through augment={aug_cfg.name}"
          f"{f' at p={p:.3f}' if aug_cfg.name == 'ada' else ''} ({ckpt['path']}) to {out}")
    return out


def _progress(cfg):
    """progress.gif: the run's fixed-noise grids (samples/step_*.png) in step order, each frame labelled with its
    step, the last one held; progress.png: the last frame. Watching G learn, outside TensorBoard."""
    from PIL import Image

    from gan_cli import board, files
    from gan_cli.errors import CheckpointError
    from gan_cli.run_folder import containing_run

    given = Path(cfg.ckpt).expanduser()
    run = given if given.is_dir() else containing_run(given)
    grids = sorted((run / "samples").glob("step_*.png"))
    if not grids:
        raise CheckpointError(f"no sample grids in {run / 'samples'}; pass a gan-train run folder (grids are written "
                              "every trainer.sample_every steps)")
    steps = [int(path.stem.removeprefix("step_")) for path in grids]
    frames = []
    for path, step in zip(grids, steps):
        with Image.open(path) as grid:
            frames.append(board.labelled(grid.convert("RGB"), f"step {step:,}"))
    out = Path(cfg.out).expanduser() if cfg.out else run / "generated" / "progress"

    def write():
        board.save_gif(frames, out / "progress.gif", [400] * (len(frames) - 1) + [2000])  # the last grid stays up
        with files.atomic(out / "progress.png") as tmp:
            frames[-1].save(tmp, format="PNG")

    _write(write, out)
    print(f"wrote {out / 'progress.gif'} ({len(frames)} grids, steps {steps[0]:,} to {steps[-1]:,}) and "
          f"{out / 'progress.png'}")
    return out


def _interpolate(cfg, G, latent_dim, labels, data_cfg, dev, out):
    """One row of cfg.steps images per consecutive pair of seeds (default: seed and seed + 1); returns the seeds."""
    from gan_cli import board, latent, toy
    from gan_cli.errors import ConfigError

    if toy.is_toy(data_cfg):
        raise ConfigError("mode=interpolate draws images; for the toy data's points use mode=sample")
    seeds = list(cfg.seeds) if cfg.seeds else [cfg.seed, cfg.seed + 1]
    z = latent.interpolations(seeds, latent_dim, cfg.steps, cfg.truncation)  # (pairs, steps, latent_dim)
    y = labels.for_interpolations(len(seeds), cfg.steps)  # None, or (pairs, steps[, classes])
    fake = board.generate(G, z.flatten(0, 1).to(dev), None if y is None else y.flatten(0, 1))
    rows = board.signed_to_unit(fake).unflatten(0, z.shape[:2])
    _write(lambda: _write_interpolation(rows, out), out)
    return seeds


def _write_points(fake, data_cfg, step, out, cfg):
    from gan_cli import board, toy

    real, _ = toy.points(data_cfg["name"], train=False)
    board.scatter_png(out / "scatter.png", fake, real, f"step {step}")
    if cfg.format == "npz":
        _save_npz(out / "points.npz", points=fake.numpy())


def _write(write, out):
    """Run `write` into the folder `out`; a failed write (a full disk, no permission) is one line. Every file is
    written whole or not at all (files.atomic)."""
    from gan_cli import files

    with files.reporting(out, "free space there or choose another out="):
        out.mkdir(parents=True, exist_ok=True)
        write()


def _save_npz(path, **arrays):
    import numpy as np

    from gan_cli import files

    with files.atomic(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _write_interpolation(rows, out):
    """interpolation.png, one row per pair of seeds, and interpolation.gif, whose frames walk all rows at once."""
    from gan_cli.board import pil_image, save_gif, save_png, tile

    pairs, steps = rows.shape[:2]
    save_png(tile(rows.flatten(0, 1), nrow=steps), out / "interpolation.png")
    frames = [pil_image(tile(rows[:, t], nrow=pairs)) for t in [*range(steps), *range(steps - 2, 0, -1)]]  # and back
    save_gif(frames, out / "interpolation.gif", duration=120)


def _write_images(images, out, cfg):
    """grid.png, and with format=png one PNG per image, with format=npz images.npz (uint8, N x H x W x C)."""
    import torch

    from gan_cli.board import save_png, tile

    save_png(tile(images, cfg.nrow), out / "grid.png")
    if cfg.format == "png":
        for i, image in enumerate(images):
            save_png(image, out / f"{i:05d}.png")
    elif cfg.format == "npz":
        array = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        _save_npz(out / "images.npz", images=array)


main = cli.command("gan-sample", "sample", sample)

if __name__ == "__main__":
    main()
