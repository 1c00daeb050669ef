"""gan-train: compose the config, build data, nets, loss and optimizers, then hand them to loop.fit()."""

import logging
import signal
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from gan_cli import cli, run_folder

log = logging.getLogger(__name__)


def train(cfg, run_dir, overrides=(), board_run=None):
    """Train per `cfg` into `run_dir`; `overrides` are the command line's, kept so resume can recompose.
    `board_run` is how TensorBoard tells the run apart (run_folder.tensorboard_run; default: named after its
    start time, with all of `overrides`); a resumed run keeps its checkpoint's."""
    import torch

    from gan_cli import checkpoint, dist, resume, schema
    from gan_cli.loop import fit
    from gan_cli.outputs import Follower, Outputs, fixed_noise_size
    from gan_cli.preempt import StopOnSignal

    run_dir = Path(run_dir)
    schema.check_train(cfg)
    dist.init()
    main = dist.is_main()
    for name in checkpoint.remove_partial(run_dir / "checkpoints") if main else ():
        log.warning("removed %s, left by a save that was interrupted", name)
    ckpt = resume.checkpoint_to_resume(cfg, run_dir)
    if ckpt is not None:
        cfg, overrides = resume.resumed_config(cfg, ckpt, overrides)
    s, data_src, loss = build(cfg, ckpt.get("dataset") if ckpt else None)
    s.d_probability = _check_contract(s, data_src, cfg)
    fixed_z = torch.randn(fixed_noise_size(cfg.data), cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    if ckpt is not None:
        resume.restore(s, ckpt, data_src)
        fixed_z = ckpt["fixed_z"]
        # A run from before runs had names kept its events in tb/ itself (name "").
        board_run = run_folder.TensorBoardRun(**ckpt.get("tensorboard", {"name": "", "overrides": ckpt["overrides"]}))
        log.info("resuming %s at step %d", ckpt["path"], s.step)
    board_run = board_run or run_folder.started_now(overrides)
    if main:
        _describe(s, data_src, cfg, run_dir)
    evaluator = _evaluator(cfg, s.speed.device, data_src) if cfg.trainer.eval_every and main else None
    with StopOnSignal(keep=dist.world_size() > 1) as stopper:
        out = (Outputs(run_dir, cfg, overrides, board_run, fixed_z, data_src, stopper, evaluator, resume.purge_step(ckpt))
               if main else Follower(stopper))
        if ckpt is None:
            out.start(s)
        try:
            out.finish(s, fit(s, loss, data_src, cfg, out))
            out.close()  # TensorBoard's last events are written here: a full disk is reported as for any write
        except RuntimeError as e:  # dist.DistError is one too
            if dist.world_size() == 1 or not dist.is_lost_peer(e):
                raise
            raise dist.lost_peer(e) from None
        finally:
            out.close(quiet=True)  # after a failure: what is already being reported stays the one message
            s.G_train, s.D_train = s.G, s.D  # the DDP wrappers hold the process group: let dist.close() free it
    if stopper.signum:
        print(f"gan-train: stopped by {signal.Signals(stopper.signum).name} after step {s.step}; saved "
              f"{run_dir / 'checkpoints' / checkpoint.LAST}; continue with resume={run_dir}", file=sys.stderr, flush=True)
        raise SystemExit(stopper.exit_code)
    log.info("done: %d steps; checkpoints in %s", s.step, run_dir / "checkpoints")
    return s


def build(cfg, dataset=None):
    """(TrainState, batch source, loss) for a composed config: data, nets, optimizers and speed settings
    on the device `cfg.device` names (under torchrun, this rank's). `dataset`: a resumed checkpoint's record
    of its prepared image folder, which it trains on again."""
    import torch
    from hydra.utils import instantiate

    from gan_cli import augment, data, device, dist, losses, models, penalties, speed
    from gan_cli.loop import TrainState, ema_of

    dev = dist.device(device.pick(cfg.device))
    torch.manual_seed(cfg.seed)  # the same on every rank: the nets start equal, the noise is drawn equal
    rank, world = dist.rank(), dist.world_size()
    data_src = data.batches(cfg.data, cfg.batch_size, dev, cfg.seed, rank, world, dataset)
    G, D = models.build(cfg.model, cfg.latent_dim, data.sample_shape(cfg.data), data_src.num_classes)
    num_classes = data_src.num_classes if cfg.model.conditional else None
    fast = speed.resolve(cfg.trainer, dev, convolutional=cfg.model.name == "dcgan", builtin=cfg.model.name != "custom")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its algorithms once and keeps the fastest
    G_train, D_train = (dist.wrap(fast.prepare(net), dev, cfg.trainer.sync_batch_norm) for net in (G, D))
    G, D = dist.unwrap(G_train), dist.unwrap(D_train)
    loss = losses.build(cfg.loss)
    penalties.check(loss, D, world)
    aug = augment.build(cfg.augment, cfg.data, dev, cfg.seed, rank, world)
    s = TrainState(G, D, fast.optimizer(instantiate(cfg.optimizer.generator), G.parameters()),
                   fast.optimizer(instantiate(cfg.optimizer.discriminator), D.parameters()),
                   G_ema=ema_of(G, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None, speed=fast,
                   G_train=G_train, D_train=D_train, rank=rank, world=world, num_classes=num_classes,
                   augment=aug, stat_names=loss.stat_names() + (aug.stat_names() if aug else ()))
    return s, data_src, loss


def _describe(s, data_src, cfg, run_dir):
    """The start-up block, on the console and in train.log: where the run writes and what it trains."""
    import torch

    def size(net):
        return f"{type(net).__name__}, {sum(p.numel() for p in net.parameters()):,} parameters"

    fast, t = s.speed, cfg.trainer
    precision = {None: "float32"}.get(fast.dtype, f"{str(fast.dtype).removeprefix('torch.')} autocast")
    threads = f", {torch.get_num_threads()} CPU threads" if fast.device.type == "cpu" else ""
    for line in (f"run folder: {run_dir.resolve()}",
                 f"device: {fast.device}, {precision}{threads}" + (f", {s.world} processes" if s.world > 1 else ""),
                 f"G: {size(s.G)}", f"D: {size(s.D)}" + (" (outputs read as probabilities)" if s.d_probability else ""),
                 *([f"conditional on {s.num_classes} classes: D sees real labels, G's are drawn uniformly"]
                   if s.num_classes else []),
                 *data_src.describe(cfg.data.name),
                 f"loss: {cfg.loss.name}; k = {t.d_steps} D step(s) per G step; batch {cfg.batch_size}; "
                 f"steps {s.step} -> {t.steps}"):
        log.info(line)


def _check_contract(s, data_src, cfg):
    """One batch through G and D before training (gan_cli/contract.py); whether D's outputs are probabilities."""
    import torch

    from gan_cli import contract
    from gan_cli.latent import classes_in_turn

    dev = s.speed.device
    z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(dev)
    y = classes_in_turn(cfg.batch_size, s.num_classes, dev) if s.num_classes else None
    d_output = cfg.model.d_output if cfg.model.name == "custom" else "logits"
    return contract.check(s.G, s.D, z, data_src.preview(cfg.batch_size).to(dev), d_output, y)


def _evaluator(cfg, dev, data_src):
    from gan_cli.evaluate import make_evaluator

    dataset = data_src.prepared.record() if data_src.prepared else None  # the folder set that trains is scored
    return make_evaluator(cfg.data, dev, cfg.eval.n, cfg.eval.seed, cfg.eval.cache_dir, dataset=dataset)


def _threads_for(launcher):
    """CPU threads for a job of a sweep whose jobs run at once on this machine (submitit_local starts them all
    together): the launcher's cpus_per_task, else 1, since N jobs of all-core thread pools on the same cores
    run several times slower than N one-thread jobs (docs/performance.md). None: torch's default."""
    if not str(launcher.get("_target_", "")).endswith(".LocalLauncher"):
        return None
    return launcher.get("cpus_per_task") or 1


def _task(cfg):
    import torch

    from gan_cli import dist

    hc = HydraConfig.get()
    threads = _threads_for(hc.launcher)
    if threads:
        torch.set_num_threads(threads)
    try:
        train(cfg, hc.runtime.output_dir, [o for o in hc.overrides.task if not o.startswith("resume=")],
              run_folder.tensorboard_run(hc, cfg))
    except BaseException:
        run_folder.remove_if_unused(hc.runtime.output_dir)
        raise
    finally:
        dist.close()


run_folder.register_resolvers()
main = cli.command("gan-train", "train", _task)

if __name__ == "__main__":
    main()
