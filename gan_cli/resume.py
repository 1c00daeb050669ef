"""Resume: which checkpoint continues a run, the config it continues with, and putting its state back."""

import logging

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gan_cli import checkpoint, device, models, schema
from gan_cli.errors import CheckpointError, ConfigError
from gan_cli.loop import STATS
from gan_cli.models import custom

log = logging.getLogger(__name__)

# The architecture: resuming with any of these changed cannot load the saved weights.
ARCH_KEYS = ("model", "latent_dim", "data.channels", "data.image_size", "trainer.ema_decay")


def checkpoint_to_resume(cfg, run_dir):
    """The checkpoint `resume=` names; for resume=auto the run folder's newest valid one, if any."""
    if cfg.resume == "auto":
        ckpt, skipped = checkpoint.newest_valid(run_dir / "checkpoints")
        for path, why in skipped:
            log.warning("skipping %s: %s", path, why)
        return ckpt
    if cfg.resume:
        return checkpoint.load(cfg.resume)
    if any((run_dir / "checkpoints").glob("*.pt")):
        raise ConfigError(f"{run_dir} already holds a run's checkpoints; continue it with resume={run_dir} "
                          "(or resume=auto), or pick a new hydra.run.dir")
    return None


def resumed_config(cfg, ckpt, overrides):
    """The checkpoint's overrides, then this command's (which win), composed again by Hydra.

    A custom model's classes, named in the checkpoint, are imported only if this command names them again or
    says trust_code=true; that consent is this command's alone and is never saved for the next resume.
    """
    parser = OverridesParser.create()
    parsed = [(parser.parse_override(text), text) for text in overrides]
    named = {net: o.value() for o, _ in parsed for net in custom.NETS if o.key_or_group == f"model.{net}._target_"}
    custom.require_consent(ckpt["config"]["model"], custom.NETS, named, cfg.trust_code, ckpt["path"])
    merged = {}
    for text in [*ckpt["overrides"], *overrides]:
        key = parser.parse_override(text).key_or_group.lstrip("+~")
        if key not in ("resume", "trust_code"):
            merged[key] = text
    new = hydra.compose("train", overrides=[*merged.values(), f"resume={cfg.resume}", f"trust_code={cfg.trust_code}"])
    schema.check_train(new)
    saved = OmegaConf.create(ckpt["config"])
    saved.model = models.with_added_keys(saved.model)  # a checkpoint from before a model key was added
    changed = [k for k in ARCH_KEYS if OmegaConf.select(new, k) != OmegaConf.select(saved, k)]
    if changed:
        raise ConfigError(f"resume: {', '.join(changed)} differ from the checkpoint's, so its weights cannot load; "
                          "drop those overrides to continue the run")
    return new, list(merged.values())


def restore(s, ckpt, data_src):
    """Nets, optimizers, loss scales, RNG states, data order and logging window as the checkpoint saved them."""
    try:
        checkpoint.load_weights(s.G, ckpt["G"], "G", ckpt["path"])
        checkpoint.load_weights(s.D, ckpt["D"], "D", ckpt["path"])
        s.opt_g.load_state_dict(ckpt["opt_g"])
        s.opt_d.load_state_dict(ckpt["opt_d"])
        if s.G_ema is not None:
            checkpoint.load_weights(s.G_ema, ckpt["G_ema"], "G_ema", ckpt["path"])
        scalers = ckpt.get("scalers", {})  # float16's loss scales; absent from checkpoints older than the option
        for scaler, name in ((s.scaler_g, "G"), (s.scaler_d, "D")):
            if scaler.is_enabled() and scalers.get(name):
                scaler.load_state_dict(scalers[name])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{ckpt['path']}: optimizer state does not fit ({e}); resume with the same optimizer") from None
    device.set_rng_state(ckpt["rng"])
    data_src.load_state_dict(ckpt["rng"]["data"])
    if s.augment is not None and ckpt.get("augment"):  # else (augmentation added on resume) it starts afresh
        s.augment.load_state_dict(ckpt["augment"])
    s.step = int(ckpt["step"])
    if tuple(ckpt["stats"].get("names", STATS)) == tuple(s.stat_names):  # older checkpoints: the log losses' five
        s.stats_sum.copy_(ckpt["stats"]["sum"])
        s.stats_count = int(ckpt["stats"]["count"])
    else:  # resumed with a loss that logs other scalars: its first window starts here
        log.warning("resume: the loss logs other scalars than the checkpoint's; the open logging window restarts")
    s.nonfinite_skips = int(ckpt["stats"]["nonfinite_skips"])


def purge_step(ckpt):
    """Where TensorBoard drops the resumed run's old events: after its last on-cycle log.

    Later events (an off-cycle final log, or steps logged after the checkpoint by a run that was killed)
    are logged again by the resumed run, so no step appears twice.
    """
    if ckpt is None:
        return None
    log_every = ckpt["config"]["trainer"]["log_every"]
    return ckpt["step"] // log_every * log_every + 1
