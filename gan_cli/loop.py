"""Algorithm 1 of Goodfellow et al. (2014): k updates of D with G fixed, then one update of G with D fixed."""

import logging
import time
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from gan_cli.errors import NonFiniteError

log = logging.getLogger("gan-train")

# Stats accumulated on the device each step and read back only every log_every steps.
STATS = ("Loss/D", "Loss/G", "D/real", "D/fake", "Grad/G_norm")


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0  # G updates done
    # Sums of STATS since the last log, and how many steps they hold: saved, so resume logs the same values.
    stats_sum: Optional[torch.Tensor] = None
    stats_count: int = 0
    nonfinite_skips: int = 0
    G_ema: Optional[AveragedModel] = None  # exponential moving average of G's weights, if trainer.ema_decay > 0

    def __post_init__(self):
        if self.stats_sum is None:
            self.stats_sum = torch.zeros(len(STATS), device=next(self.G.parameters()).device)

    def sampler(self, latent_dim):
        """The G that makes pictures and is evaluated: the moving average, with fresh statistics, if any."""
        if self.G_ema is None:
            return self.G
        standing_stats(self.G_ema.module, latent_dim)
        return self.G_ema.module


def ema_of(G, decay):
    """A copy of G whose weights follow G's as an exponential moving average."""
    return AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def standing_stats(G, latent_dim, batches=16, m=256):
    """Batch-norm statistics measured for G's own weights (averaged weights need their own).

    The noise comes from a fixed generator: the same weights always get the same statistics, and
    training's random stream is not touched.
    """
    gen = torch.Generator().manual_seed(0)
    device = next(G.parameters()).device
    update_bn([torch.randn(m, latent_dim, generator=gen).to(device) for _ in range(batches)], G)


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


def noise(m, latent_dim, device):
    return torch.randn(m, latent_dim, device=device)  # z ~ N(0, I)


def d_step(s, loss, real, z):
    """One ascent step on D's objective; G is only evaluated, never differentiated."""
    with torch.no_grad():
        fake = s.G(z)
    real_logits, fake_logits = s.D(real), s.D(fake)
    loss_d = loss.d(real_logits, fake_logits)
    s.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    _check_finite(loss_d.detach(), _grad_norm(s.D), "D")
    s.opt_d.step()
    return loss_d.detach(), torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()


def g_step(s, loss, z):
    """One descent step on G's loss; D's parameters take no gradient and are not stepped."""
    s.D.requires_grad_(False)
    try:
        loss_g = loss.g(s.D(s.G(z)))
        s.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
    finally:
        s.D.requires_grad_(True)
    grad_norm = _grad_norm(s.G)
    _check_finite(loss_g.detach(), grad_norm, "G")
    s.opt_g.step()
    return loss_g.detach(), grad_norm


def _iteration(s, loss, data, cfg, device):
    """k D steps, each on a fresh real batch and fresh noise, then one G step on fresh noise."""
    m = cfg.batch_size
    for _ in range(cfg.trainer.d_steps):
        loss_d, d_real, d_fake = d_step(s, loss, data.next(), noise(m, cfg.latent_dim, device))
    loss_g, g_norm = g_step(s, loss, noise(m, cfg.latent_dim, device))
    if s.G_ema is not None:
        s.G_ema.update_parameters(s.G)
    return torch.stack([loss_d, loss_g, d_real, d_fake, g_norm])


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


def fit(s, loss, data, cfg, out):
    """Train from s.step to cfg.trainer.steps; `out` logs, samples and checkpoints (see train.Outputs)."""
    t = cfg.trainer
    device = next(s.G.parameters()).device
    tic, images = time.perf_counter(), 0
    bar = tqdm(range(s.step + 1, t.steps + 1), initial=s.step, total=t.steps, desc="train", dynamic_ncols=True)
    for step in bar:
        # Skipping a step must also undo what its forward passes did to batch-norm statistics.
        buffers = [b.clone() for b in _buffers(s)] if t.max_nonfinite_skips else None
        try:
            s.stats_sum += _iteration(s, loss, data, cfg, device)
            s.stats_count += 1
        except NonFiniteStep as e:
            _skip_or_stop(s, step, e, t.max_nonfinite_skips)
            for buffer, saved in zip(_buffers(s), buffers):
                buffer.copy_(saved)
        s.step = step
        images += t.d_steps * cfg.batch_size

        on_cycle = step % t.log_every == 0
        if (on_cycle or step == t.steps) and s.stats_count:
            values = dict(zip(STATS, (s.stats_sum / s.stats_count).tolist()))  # the one regular host sync
            speed = images / (time.perf_counter() - tic)
            out.scalars({**values, "Speed/images_per_sec": speed}, step)
            bar.set_postfix({"D": f"{values['Loss/D']:.3f}", "G": f"{values['Loss/G']:.3f}", "img/s": f"{speed:.0f}"})
            if on_cycle:  # an off-cycle final log keeps its window open, so a resumed run logs what a straight one does
                s.stats_sum.zero_()
                s.stats_count, tic, images = 0, time.perf_counter(), 0
        if (t.sample_every and step % t.sample_every == 0) or step == t.steps:
            out.samples(s, step)
        if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
            out.evaluate(s, step)
        periodic = bool(t.ckpt_every and step % t.ckpt_every == 0)
        if periodic or step == t.steps or out.stop_signal:
            out.checkpoint(s, step, periodic)
        if out.stop_signal:
            break
    bar.close()
    return out.last_scalars
