"""gan-train: compose the config, build data, nets, loss and optimizers, then hand them to loop.fit()."""

import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_cli import checkpoint, data, device, dist, evaluate, losses, models, schema, speed
from gan_cli.board import Board, generate, hparams_of
from gan_cli.errors import (EXIT_ENVIRONMENT, CheckpointError, ConfigError, NonFiniteError, exit_2_on_hydra_errors,
                            report_errors)
from gan_cli.loop import TrainState, ema_of, fit
from gan_cli.preempt import StopOnSignal

log = logging.getLogger("gan-train")
GRID = 64  # images in the fixed-noise sample grid
SCATTER = 2000  # points in the fixed-noise scatter plot of 2-D toy data

# The architecture: resuming with any of these changed cannot load the saved weights.
ARCH_KEYS = ("model", "latent_dim", "data.channels", "data.image_size", "trainer.ema_decay")


class Follower:
    """What every rank's outputs do: take part in deciding to stop. On torchrun ranks other than 0 that is all
    (they write nothing); rank 0's Outputs extends it with the writing."""

    def __init__(self, stopper):
        self.stopper = stopper
        self.last_scalars = {}

    @property
    def stop_signal(self):
        return agreed_stop(self.stopper)

    def scalars(self, values, step):
        self.last_scalars = values

    def start(self):
        pass

    def samples(self, s, step):
        pass

    def evaluate(self, s, step):
        pass

    def checkpoint(self, s, step, periodic):
        pass

    def finish(self, s, final):
        pass

    def close(self):
        pass


class Outputs(Follower):
    """Everything a run writes into its folder: TensorBoard, sample grids, checkpoints."""

    def __init__(self, run_dir, cfg, overrides, fixed_z, data_src, stopper, evaluator=None, purge_step=None):
        super().__init__(stopper)
        self.run_dir, self.cfg, self.overrides = Path(run_dir), cfg, overrides
        self.fixed_z, self.data_src, self.evaluator = fixed_z, data_src, evaluator
        self.board = Board(run_dir, purge_step)
        self.metrics_log = self.run_dir / "metrics.jsonl"
        if purge_step is not None and self.metrics_log.is_file():  # as TensorBoard: drop what will be redone
            kept = [line for line in self.metrics_log.read_text().splitlines() if json.loads(line)["step"] < purge_step]
            self.metrics_log.write_text("".join(line + "\n" for line in kept))
        self.real_points = data_src.preview(SCATTER) if data.is_points(cfg.data) else None

    def start(self):
        """What a new run logs once: its config and a grid of real data."""
        self.board.text("config", OmegaConf.to_yaml(self.cfg))
        if not data.is_points(self.cfg.data):
            self.board.grid("Samples/real", self.data_src.preview(GRID), 0, png_name="real.png")

    def finish(self, s, final):
        if final and not self.stopper.signum:
            self.board.hparams(hparams_of(self.cfg), {f"final/{k}": v for k, v in final.items() if k.startswith("Loss/")},
                               s.step)

    def close(self):
        self.board.close()

    def scalars(self, values, step):
        super().scalars(values, step)
        self.board.scalars(values, step)

    def samples(self, s, step):
        fake = generate(s.sampler(self.cfg.latent_dim), self.fixed_z.to(next(s.G.parameters()).device))
        if data.is_points(self.cfg.data):
            self.board.scatter("Samples/scatter", fake, self.real_points, step, png_name=f"step_{step:07d}.png")
        else:
            self.board.grid("Samples/fixed_noise", fake, step, png_name=f"step_{step:07d}.png")

    def evaluate(self, s, step):
        result = self.evaluator(s.sampler(self.cfg.latent_dim), self.cfg.latent_dim)
        self.board.scalars(evaluate.scalars(result), step)
        with open(self.metrics_log, "a") as f:
            f.write(json.dumps({"step": step, **result}) + "\n")
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in evaluate.scalars(result).items()))

    def checkpoint(self, s, step, periodic):
        weights = {"G": s.G.state_dict(), "D": s.D.state_dict()}
        if not all(t.isfinite().all() for sd in weights.values() for t in sd.values() if t.is_floating_point()):
            raise NonFiniteError(f"step {step}: the weights are not finite; refusing to save them over "
                                 "the last good checkpoint. Lower the learning rates")
        if s.G_ema is not None:
            s.sampler(self.cfg.latent_dim)  # saves the average with batch-norm statistics of its own weights
        payload = {
            "step": step, **weights, "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(),
            "G_ema": s.G_ema.state_dict() if s.G_ema is not None else {},
            "scalers": {"G": s.scaler_g.state_dict(), "D": s.scaler_d.state_dict()},  # empty unless precision=16
            "stats": {"sum": s.stats_sum, "count": s.stats_count, "nonfinite_skips": s.nonfinite_skips},
            "rng": {**device.rng_state(), "data": self.data_src.state_dict()},
            "fixed_z": self.fixed_z, "config": OmegaConf.to_container(self.cfg, resolve=True),
            "overrides": list(self.overrides),
        }
        checkpoint.write(self.run_dir / "checkpoints", payload, step, self.cfg.trainer.keep_last, periodic)


def agreed_stop(stopper):
    """The signal any rank received (all ranks then stop after the same step), recorded as this rank's own."""
    stopper.signum = dist.max_over_ranks(stopper.signum or 0) or None
    return stopper.signum


def train(cfg, run_dir, overrides=()):
    """Train per `cfg` into `run_dir`; `overrides` are the command line's, kept so resume can recompose."""
    run_dir = Path(run_dir)
    schema.check_train(cfg)
    dist.init()
    main = dist.is_main()
    for name in checkpoint.remove_partial(run_dir / "checkpoints") if main else ():
        log.warning("removed %s, left by a save that was interrupted", name)
    ckpt = _checkpoint_to_resume(cfg, run_dir)
    if ckpt is not None:
        cfg, overrides = _resumed_config(cfg, ckpt, overrides)
    dev = dist.device(device.pick(cfg.device))
    s, data_src, loss = build(cfg, dev)
    grid = SCATTER if data.is_points(cfg.data) else GRID
    fixed_z = torch.randn(grid, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    if ckpt is not None:
        _restore(s, ckpt, data_src)
        fixed_z = ckpt["fixed_z"]
        log.info("resuming %s at step %d", ckpt["path"], s.step)
    evaluator = (evaluate.make_evaluator(cfg.data, dev, cfg.eval.n, cfg.eval.seed, cfg.eval.cache_dir)
                 if cfg.trainer.eval_every and main else None)
    with StopOnSignal(keep=dist.world_size() > 1) as stopper:
        out = (Outputs(run_dir, cfg, overrides, fixed_z, data_src, stopper, evaluator, purge_step=_purge_step(ckpt))
               if main else Follower(stopper))
        if ckpt is None:
            out.start()
        try:
            out.finish(s, fit(s, loss, data_src, cfg, out))
        except RuntimeError as e:  # dist.DistError is one too
            if dist.world_size() == 1 or not dist.is_lost_peer(e):
                raise
            raise dist.lost_peer(e) from None
        finally:
            out.close()
            s.G_train, s.D_train = s.G, s.D  # the DDP wrappers hold the process group: let dist.close() free it
    if stopper.signum:
        print(f"gan-train: stopped by {signal.Signals(stopper.signum).name} after step {s.step}; saved "
              f"{run_dir / 'checkpoints' / checkpoint.LAST}; continue with resume={run_dir}", file=sys.stderr, flush=True)
        raise SystemExit(stopper.exit_code)
    log.info("done: %d steps; checkpoints in %s", s.step, run_dir / "checkpoints")
    return s


def build(cfg, dev):
    """(TrainState, batch source, loss) for a composed config: the nets, optimizers and speed settings."""
    torch.manual_seed(cfg.seed)  # the same on every rank: the nets start equal, the noise is drawn equal
    rank, world = dist.rank(), dist.world_size()
    data_src = data.batches(cfg.data, cfg.batch_size, dev, cfg.seed, rank, world)
    G, D = models.build(cfg.model, cfg.latent_dim, cfg.data.channels, cfg.data.image_size)
    fast = speed.resolve(cfg.trainer, dev, convolutional=cfg.model.name == "dcgan")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its algorithms once and keeps the fastest
    G_train, D_train = (dist.wrap(fast.prepare(net), dev, cfg.trainer.sync_batch_norm) for net in (G, D))
    G, D = dist.unwrap(G_train), dist.unwrap(D_train)
    s = TrainState(G, D, fast.optimizer(instantiate(cfg.optimizer.generator), G.parameters()),
                   fast.optimizer(instantiate(cfg.optimizer.discriminator), D.parameters()),
                   G_ema=ema_of(G, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None, speed=fast,
                   G_train=G_train, D_train=D_train, rank=rank, world=world)
    return s, data_src, losses.build(cfg.loss)


def _purge_step(ckpt):
    """Where TensorBoard drops the resumed run's old events: after its last on-cycle log.

    Later events (an off-cycle final log, or steps logged after the checkpoint by a run that was killed)
    are logged again by the resumed run, so no step appears twice.
    """
    if ckpt is None:
        return None
    log_every = ckpt["config"]["trainer"]["log_every"]
    return ckpt["step"] // log_every * log_every + 1


def _checkpoint_to_resume(cfg, run_dir):
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


def _resumed_config(cfg, ckpt, overrides):
    """The checkpoint's overrides, then this command's (which win), composed again by Hydra."""
    parser = OverridesParser.create()
    merged = {}
    for text in [*ckpt["overrides"], *overrides]:
        key = parser.parse_override(text).key_or_group.lstrip("+~")
        if key != "resume":
            merged[key] = text
    new = hydra.compose("train", overrides=[*merged.values(), f"resume={cfg.resume}"])
    schema.check_train(new)
    saved = OmegaConf.create(ckpt["config"])
    saved.model = schema.model_with_defaults(saved.model)  # a checkpoint from before a model key was added
    changed = [k for k in ARCH_KEYS if OmegaConf.select(new, k) != OmegaConf.select(saved, k)]
    if changed:
        raise ConfigError(f"resume: {', '.join(changed)} differ from the checkpoint's, so its weights cannot load; "
                          "drop those overrides to continue the run")
    return new, list(merged.values())


def _restore(s, ckpt, data_src):
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
    s.step = int(ckpt["step"])
    s.stats_sum.copy_(ckpt["stats"]["sum"])
    s.stats_count = int(ckpt["stats"]["count"])
    s.nonfinite_skips = int(ckpt["stats"]["nonfinite_skips"])


def _run_dir_for(resume, default):
    """hydra.run.dir: a resumed run continues in its own folder; otherwise a new timestamped one."""
    path = Path(str(resume)).expanduser() if resume and resume != "auto" else None
    if path is not None and path.exists():
        return str(checkpoint.run_folder(path) if path.is_file() else path)
    try:
        return dist.from_main(default)  # under torchrun: rank 0's timestamp, even if the ranks started a second apart
    except RuntimeError as e:  # rank 0 died first; this runs inside Hydra's set-up, before report_errors can help
        if not dist.is_lost_peer(e):
            raise
        print(f"gan-train: error: {dist.lost_peer(e)}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_ENVIRONMENT) from None


def _hydra_subdir_for(resume):
    """Keep the original run's .hydra/ intact when resuming into its folder; only rank 0 writes one."""
    if not dist.is_main():
        return None
    return f".hydra/resume-{datetime.now():%Y%m%d-%H%M%S}" if resume and resume != "auto" else ".hydra"


def _log_file(run_dir, job_name):
    """train.log in the run folder, written by rank 0 alone (the other ranks log to the console)."""
    return str(Path(run_dir) / f"{job_name}.log") if dist.is_main() else os.devnull


def _dirname(text):
    """A sweep job's folder name from its overrides: one path component, not too long."""
    return text.replace("/", "_")[:120]


schema.register()
OmegaConf.register_new_resolver("gan_dirname", _dirname, replace=True)
OmegaConf.register_new_resolver("gan_run_dir", _run_dir_for, replace=True)
OmegaConf.register_new_resolver("gan_hydra_subdir", _hydra_subdir_for, replace=True)
OmegaConf.register_new_resolver("gan_log_file", _log_file, replace=True)


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.configs", config_name="train")
@report_errors("gan-train")
def _main(cfg):
    hc = HydraConfig.get()
    try:
        train(cfg, hc.runtime.output_dir, [o for o in hc.overrides.task if not o.startswith("resume=")])
    finally:
        dist.close()


main = exit_2_on_hydra_errors(_main)

if __name__ == "__main__":
    main()
