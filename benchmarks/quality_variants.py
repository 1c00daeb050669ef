"""Short quality experiments: train with gan-train overrides (and a few changes gan-train has no option for),
then score G sampled several ways. The README's "What was tried" tables came from these runs.

    python benchmarks/quality_variants.py --steps 1500 trainer.precision=32 trainer.channels_last=false
    python benchmarks/quality_variants.py --steps 1500 --smooth 0.1 trainer.precision=32 trainer.channels_last=false
    python benchmarks/quality_variants.py --steps 3000 --emas 0.99,0.995,0.999 trainer.precision=32 ...
    python benchmarks/quality_variants.py --steps 6000 --score-every 1500 --emas 0.999 --translate --cutout \
        optimizer.generator.lr=4e-4

Scores (2,000 samples against the test split): G in eval mode (running batch-norm statistics), G with
batch norm in train mode (batches of 64), G with standing statistics recomputed for its final weights, and
each requested EMA of G's weights (with its own standing statistics).
"""

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from gan_cli import evaluate, loop
from step_speed import state


def translate(x, r=3):
    """Each image shifted by up to r pixels in x and y, the border filled with black (-1)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (r, r, r, r), value=-1.0)
    dy, dx = torch.randint(0, 2 * r + 1, (b,)), torch.randint(0, 2 * r + 1, (b,))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def cutout(x, ratio=0.5):
    """Each image with a random square of side ratio * size set to 0 (DiffAugment's cutout, Zhao et al. 2020)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy, cx = torch.randint(0, h + 1 - sh % 2, (b, 1, 1)), torch.randint(0, w + 1 - sw % 2, (b, 1, 1))
    rows, cols = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    keep = ((rows - cy).abs() >= (sh + 1) // 2) | ((cols - cx).abs() >= (sw + 1) // 2)
    return x * keep[:, None].to(x.dtype)


class Translated(torch.nn.Module):
    """D that sees randomly translated (and optionally cut-out) inputs, real and fake, in both phases."""

    def __init__(self, D, cut=False):
        super().__init__()
        self.D, self.cut = D, cut

    def forward(self, x):
        x = translate(x)
        return self.D(cutout(x) if self.cut else x)


class TrainModeBN(torch.nn.Module):
    """G sampled with batch norm on each batch's own statistics (it ignores eval())."""

    def __init__(self, G, batch=64):
        super().__init__()
        self.G, self.batch = copy.deepcopy(G).train(), batch

    def train(self, mode=True):
        return self

    def forward(self, z):
        return torch.cat([self.G(chunk) for chunk in z.split(self.batch)])


def smoothed(loss, target):
    """One-sided label smoothing (Salimans et al. 2016): D's target for real images is `target`, not 1."""
    def d(real_logits, fake_logits):
        return (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, target))
                + F.softplus(fake_logits).mean())
    return type(loss)(f"{loss.name}+smooth", loss.g, d)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--emas", default="", help="comma-separated EMA decays to keep and score")
    p.add_argument("--smooth", type=float, default=0.0, help="one-sided label smoothing: real target 1 - this")
    p.add_argument("--translate", action="store_true", help="random +-3 px translations of D's inputs")
    p.add_argument("--cutout", action="store_true", help="with --translate: also DiffAugment's cutout")
    p.add_argument("--n", type=int, default=2000, help="samples per score")
    p.add_argument("--lr-decay", action="store_true", help="both learning rates fall linearly to 0 at --steps")
    p.add_argument("--score-every", type=int, default=0, help="also score G and its EMAs every N steps")
    p.add_argument("overrides", nargs="*", help="gan-train overrides, e.g. model.d_norm=spectral")
    args = p.parse_args()
    cfg, s, data_src, loss = state(args.overrides)
    dev = s.speed.device
    if args.smooth:
        loss = smoothed(loss, 1.0 - args.smooth)
    if args.translate:
        s.D = s.D_train = Translated(s.D, args.cutout)
    emas = {float(d): loop.ema_of(s.G, float(d)) for d in args.emas.split(",") if d}
    scorer = evaluate.Evaluator(cfg.data, dev, n=args.n, seed=0)
    decay = ([torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / args.steps) for opt in (s.opt_g, s.opt_d)]
             if args.lr_decay else [])

    tic = time.perf_counter()
    for step in range(1, args.steps + 1):
        loop._iteration(s, loss, data_src, cfg, dev)
        for ema in emas.values():
            ema.update_parameters(s.G)
        for scheduler in decay:
            scheduler.step()
        if args.score_every and step % args.score_every == 0 and step < args.steps:
            for ema in emas.values():
                loop.standing_stats(ema.module, cfg.latent_dim)
            for name, G in {"G": s.G, **{f"EMA {d}": e.module for d, e in emas.items()}}.items():
                r = scorer(G, cfg.latent_dim)
                print(f"step {step:>6} {name:>10}: inception score {r['inception_score']:.2f}, "
                      f"class entropy {r['class_entropy']:.3f}, FD {r['fd_classifier']:.1f}", flush=True)
    print(f"{args.steps} steps in {time.perf_counter() - tic:.0f} s; overrides {args.overrides}")

    standing = copy.deepcopy(s.G)
    loop.standing_stats(standing, cfg.latent_dim)
    samplers = {"G (eval mode)": s.G, "G (train-mode batch norm)": TrainModeBN(s.G), "G (standing stats)": standing}
    for decay, ema in emas.items():
        loop.standing_stats(ema.module, cfg.latent_dim)
        samplers[f"EMA {decay}"] = ema.module
    for name, G in samplers.items():
        r = scorer(G, cfg.latent_dim)
        print(f"{name:>26}: inception score {r['inception_score']:.2f}, class entropy {r['class_entropy']:.3f}, "
              f"FD {r['fd_classifier']:.1f}, precision {r['precision']:.2f}, recall {r['recall']:.2f}")


if __name__ == "__main__":
    main()
