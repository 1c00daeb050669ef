"""Algorithm 1 of Goodfellow et al. (2014): k updates of D with G fixed, then one update of G with D fixed."""

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from gan_cli import dist
from gan_cli.augment import Augment
from gan_cli.errors import NonFiniteError
from gan_cli.latent import classes_in_turn
from gan_cli.losses import logits_from_probabilities
from gan_cli.models import call
from gan_cli.penalties import d_penalty
from gan_cli.progress import Progress
from gan_cli.speed import Speed, has_batch_norm

log = logging.getLogger(__name__)

# Stats accumulated on the device each step and read back only every log_every steps (GANLoss.stat_names).
STATS = ("Loss/D", "Loss/G", "D/real", "D/fake", "Grad/G_norm")


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0  # G updates done
    # Sums of the loss's stats since the last log, and how many steps they hold: saved, so resume logs the same.
    stat_names: tuple = STATS
    stats_sum: Optional[torch.Tensor] = None
    stats_count: int = 0
    nonfinite_skips: int = 0
    G_ema: Optional[AveragedModel] = None  # exponential moving average of G's weights, if trainer.ema_decay > 0
    speed: Optional[Speed] = None  # how the steps run on the device (speed.resolve); default: float32, checked
    # Under torchrun: the nets as the phase that updates them sees them (DDP-wrapped), and this process's
    # share of each global batch. G and D themselves stay plain modules: checkpoints, EMA and sampling use them.
    G_train: Optional[nn.Module] = None
    D_train: Optional[nn.Module] = None
    rank: int = 0
    world: int = 1
    d_probability: bool = False  # D ends in a sigmoid (model.d_output): its scores are probabilities, not logits
    num_classes: Optional[int] = None  # a class-conditional G and D take labels in range(num_classes)
    augment: Optional[Augment] = None  # what every image D sees goes through (augment.py), or None

    def __post_init__(self):
        device = next(self.G.parameters()).device
        self.G_train = self.G_train or self.G
        self.D_train = self.D_train or self.D
        if self.stats_sum is None:
            self.stats_sum = torch.zeros(len(self.stat_names), device=device)
        self.speed = self.speed or Speed(device)
        self.scaler_g, self.scaler_d = self.speed.scaler(), self.speed.scaler()
        self.joint_d = not has_batch_norm(self.D)

    def sampler(self, latent_dim):
        """The G that makes pictures and is evaluated: the moving average, with fresh statistics, if any."""
        if self.G_ema is None:
            return self.G
        standing_stats(self.G_ema.module, latent_dim, self.num_classes)
        return self.G_ema.module


def ema_of(G, decay):
    """A copy of G whose weights follow G's as an exponential moving average."""
    return AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def standing_stats(G, latent_dim, num_classes=None, batches=16, m=256):
    """Batch-norm statistics measured for G's own weights (averaged weights need their own).

    The noise comes from a fixed generator: the same weights always get the same statistics, and
    training's random stream is not touched. A conditional G sees every class equally often.
    """
    gen = torch.Generator().manual_seed(0)
    device = next(G.parameters()).device
    net = _WithLabels(G, classes_in_turn(m, num_classes, device)) if num_classes else G
    update_bn([torch.randn(m, latent_dim, generator=gen).to(device) for _ in range(batches)], net)


class _WithLabels(nn.Module):
    """G(z, y) with fixed labels, for update_bn, which passes its batches as the only input."""

    def __init__(self, G, y):
        super().__init__()
        self.G, self.y = G, y

    def forward(self, z):
        return self.G(z, self.y)


class NonFiniteStep(Exception):
    """A loss or gradient is inf or NaN; raised before the optimizer step, so no weight is touched."""


def _check_finite(loss, grad_norm, name):
    # One host sync per phase: the only way to know before stepping the optimizer.
    finite = torch.isfinite(torch.stack([loss, grad_norm])).tolist()
    if not finite[0]:
        raise NonFiniteStep(f"Loss/{name}")
    if not finite[1]:
        raise NonFiniteStep(f"the gradient of {name}")


def _grad_norm(module):
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


def _share(global_batch, m, rank, world):
    """This rank's slice of a batch of m x world that every rank drew alike: N processes see what one process
    with the global batch would."""
    return global_batch[rank * m:(rank + 1) * m] if world > 1 else global_batch


def noise(m, latent_dim, device, rank=0, world=1):
    """z ~ N(0, I) for this rank's share of a global batch of m x world."""
    return _share(torch.randn(m * world, latent_dim, device=device), m, rank, world)


def fake_labels(s, m, device):
    """Labels for G's samples, uniform over the classes and drawn from the training RNG as the noise is (so a
    resumed run draws what a straight one would); None for an unconditional model, which draws nothing."""
    if not s.num_classes:
        return None
    return _share(torch.randint(s.num_classes, (m * s.world,), device=device), m, s.rank, s.world)


def _update(s, net, opt, scaler, loss, name):
    """Backward, then (if the loss and gradient are finite) one optimizer step; returns the gradient norm.
    Gradients are None on entry: freed after each step here, and by _skip_or_stop after a skipped one."""
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grad_norm = _grad_norm(net)
    if scaler.is_enabled():  # float16: an inf gradient is the scaler's to skip (it lowers the scale), not an error
        grad_norm = torch.where(grad_norm.isfinite(), grad_norm, 0.0)
    if s.speed.check_each_step:
        _check_finite(loss.detach(), grad_norm, name)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)  # freed now, not before the next update: the other net's phase peaks lower
    return grad_norm


def as_logits(s, scores):
    """D's scores as float32 logits, one per sample: (m,) or (m, 1) -> (m,)."""
    scores = scores.float().reshape(-1)
    return logits_from_probabilities(scores) if s.d_probability else scores


def seen_by_d(s, x):
    """x as D sees it: augmented (in float32, outside autocast: coordinates and colours need the precision)
    when the run augments, else x itself."""
    return s.speed.batch(s.augment(x.float())) if s.augment is not None else x


def d_step(s, loss, real, z, real_y=None, fake_y=None):
    """One ascent step on D's objective; G is only evaluated, never differentiated. A conditional D scores
    the real images with their own labels and the fakes with the labels G drew them for."""
    with s.speed.autocast(), torch.no_grad():
        fake = call(s.G, z, fake_y)
    real, fake = seen_by_d(s, real), seen_by_d(s, fake)
    with s.speed.autocast():
        if s.joint_d:  # D without batch norm scores each image alone: one pass over both is the same function
            both_y = None if real_y is None else torch.cat([real_y, fake_y])
            logits = as_logits(s, call(s.D_train, torch.cat([real, fake.to(real.dtype)]), both_y))
            real_logits, fake_logits = logits[:len(real)], logits[len(real):]
        else:
            real_logits = as_logits(s, call(s.D_train, real, real_y))
            fake_logits = as_logits(s, call(s.D_train, fake, fake_y))
        penalty, terms = d_penalty(loss, s.D_train, real, fake, real_logits, real_y)
    loss_d = loss.d(real_logits, fake_logits) + penalty
    _update(s, s.D, s.opt_d, s.scaler_d, loss_d, "D")
    stats = {**loss.d_scores(real_logits.detach(), fake_logits.detach()), **{k: v.detach() for k, v in terms.items()}}
    if s.augment is not None:  # D's overfitting signal r_t (Karras et al. 2020): the share of reals it calls real
        stats["Augment/rt"] = torch.sign(real_logits.detach() - loss.boundary).mean()
        s.augment.observe(real_logits, loss.boundary)
    return loss_d.detach(), stats


def g_step(s, loss, z, y=None):
    """One descent step on G's loss; D's parameters take no gradient and are not stepped."""
    s.D.requires_grad_(False)
    try:
        with s.speed.autocast():
            fake = call(s.G_train, z, y)
        fake = seen_by_d(s, fake)  # the augmentation is differentiable: G's gradient flows back through it
        with s.speed.autocast():
            fake_logits = as_logits(s, call(s.D, fake, y))
        loss_g = loss.g(fake_logits)
        grad_norm = _update(s, s.G, s.opt_g, s.scaler_g, loss_g, "G")
    finally:
        s.D.requires_grad_(True)
    return loss_g.detach(), grad_norm


def train_step(s, loss, data, cfg, device):
    """k D steps, each on a fresh real batch and fresh noise, then one G step on fresh noise
    (and, for a conditional model, fresh labels)."""
    m, shard = cfg.batch_size, (s.rank, s.world)
    for _ in range(cfg.trainer.d_steps):
        real, real_y = data.next()
        z = noise(m, cfg.latent_dim, device, *shard)
        loss_d, d_stats = d_step(s, loss, s.speed.batch(real), z, real_y if s.num_classes else None,
                                 fake_labels(s, m, device))
    z = noise(m, cfg.latent_dim, device, *shard)
    loss_g, g_norm = g_step(s, loss, z, fake_labels(s, m, device))
    if s.G_ema is not None:
        s.G_ema.update_parameters(s.G)
    values = {"Loss/D": loss_d, "Loss/G": loss_g, "Grad/G_norm": g_norm, **d_stats}
    if s.augment is not None:
        s.augment.adjust(s.step + 1, cfg.trainer.d_steps * m * s.world)  # ADA: p follows r_t
        values["Augment/p"] = s.augment.p
    return torch.stack([values[name] for name in s.stat_names])


def _buffers(s):
    return [b for net in (s.G, s.D) for b in net.buffers()]


def _skip_or_stop(s, step, error, max_skips):
    s.opt_d.zero_grad(set_to_none=True)
    s.opt_g.zero_grad(set_to_none=True)
    s.nonfinite_skips += 1
    if s.nonfinite_skips > max_skips:
        raise NonFiniteError(
            f"step {step}: {error} is not finite; stopped before the optimizer step, weights untouched, "
            f"no checkpoint written. Lower the learning rates, or set trainer.max_nonfinite_skips to skip such "
            f"steps") from None
    log.warning("step %d: %s is not finite; the rest of this step skipped (%d of at most %d)",
                step, error, s.nonfinite_skips, max_skips)


def _check_window(values, step, log_every):
    """finite_check=log: inf/NaN are found when the window's sums are read, after the optimizer stepped."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise NonFiniteError(
            f"{', '.join(bad)} not finite in the {log_every} steps up to {step}; stopped, no checkpoint written "
            f"after the last good one. Lower the learning rates, or set trainer.finite_check=step to stop "
            f"before the first bad optimizer step")


def fit(s, loss, data, cfg, out):
    """Train from s.step to cfg.trainer.steps; `out` logs, samples and checkpoints (see train.Outputs)."""
    t = cfg.trainer
    device = next(s.G.parameters()).device
    tic, images = time.perf_counter(), 0
    progress = Progress(t.get("progress", "auto"), s.step, t.steps, "train", log, quiet=s.rank > 0)
    for step in range(s.step + 1, t.steps + 1):
        # Skipping a step must also undo what its forward passes did to batch-norm statistics.
        buffers = [b.clone() for b in _buffers(s)] if t.max_nonfinite_skips else None
        try:
            s.stats_sum += train_step(s, loss, data, cfg, device)
            s.stats_count += 1
        except NonFiniteStep as e:
            _skip_or_stop(s, step, e, t.max_nonfinite_skips)
            for buffer, saved in zip(_buffers(s), buffers):
                buffer.copy_(saved)
        s.step = step
        images += t.d_steps * cfg.batch_size * s.world
        progress.step()

        on_cycle = step % t.log_every == 0
        if (on_cycle or step == t.steps) and s.stats_count:
            window = dist.mean_over_ranks(s.stats_sum / s.stats_count)
            values = dict(zip(s.stat_names, window.tolist()))  # the one regular host sync
            if not s.speed.check_each_step:
                _check_window(values, step, t.log_every)
            speed = images / (time.perf_counter() - tic)
            out.scalars({**values, "Speed/images_per_sec": speed}, step)
            progress.report(step, _summary(values, speed),
                            {"D": f"{values['Loss/D']:.3f}", "G": f"{values['Loss/G']:.3f}", "img/s": f"{speed:.0f}"})
            if on_cycle:  # an off-cycle final log keeps its window open, so a resumed run logs what a straight one does
                s.stats_sum.zero_()
                s.stats_count, tic, images = 0, time.perf_counter(), 0
        if (t.sample_every and step % t.sample_every == 0) or step == t.steps:
            out.samples(s, step)
        if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
            out.evaluate(s, step)
        periodic = bool(t.ckpt_every and step % t.ckpt_every == 0)
        stop = out.stop_signal  # under torchrun, every rank's answer: all stop after the same step
        if periodic or step == t.steps or stop:
            out.checkpoint(s, step, periodic)
        if stop:
            break
    progress.close()
    return out.last_scalars


def _summary(values, speed):
    """A log window in one line: the losses, D's verdicts on real and fake, the speed."""
    if "D/real" in values:
        scores = f"D(x) {values['D/real']:.3f} D(G(z)) {values['D/fake']:.3f}"
    else:
        scores = f"D's score real {values['D/real_score']:.3f} fake {values['D/fake_score']:.3f}"
    return f"D {values['Loss/D']:.3f} G {values['Loss/G']:.3f} | {scores} | {speed:,.0f} img/s"
