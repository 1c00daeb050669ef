"""Augmenting every image D sees, real and fake alike, in both phases, with operations that gradients flow
through, so that D cannot memorise a small training set (Zhao et al. 2020; Karras et al. 2020).

- `diffaugment` (Zhao et al.): each policy operation on every image, with the paper's magnitudes.
- `ada` (Karras et al.): each operation of a fixed set on each image with probability p, where p follows D's
  overfitting signal r_t = E[sign(D(x_real))]: up when r_t is above augment.target, down when below.

Everything is batched torch on the device (one gather for the whole-pixel geometric operations, an affine
grid for scaling, masks for cutout, arithmetic for colour) with no host sync, drawn from a generator of its
own that checkpoints save, so resume stays bit-exact.
Under torchrun every rank draws the parameters of the global batch and takes its own slice, as for the noise.
Mechanism and study: docs/augment.md.
"""

import torch
import torch.nn.functional as F

from gan_cli import dist
from gan_cli.errors import ConfigError

DIFFAUGMENT_OPS = ("color", "translation", "cutout")
ADA_OPS = ("xflip", "rotate90", "translation", "scale", "brightness", "contrast", "saturation", "cutout")
SEED_OFFSET = 0xA06  # the augmentation generator's seed: cfg.seed + this, apart from the noise's stream


class Augment:
    """The augmentation of a run: `__call__(x)` on images in [-1, 1] (B, C, H, W), plus, for ADA, p and its
    controller. augment=none builds none (train.build keeps None)."""

    def __init__(self, cfg, device, seed, rank=0, world=1):
        self.name = cfg.name
        self.ops = tuple(cfg.policy if self.name == "diffaugment" else cfg.ops)
        known = DIFFAUGMENT_OPS if self.name == "diffaugment" else ADA_OPS
        unknown = [op for op in self.ops if op not in known]
        if unknown:
            key = "augment.policy" if self.name == "diffaugment" else "augment.ops"
            raise ConfigError(f"{key}: unknown operation(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        self.device, self.rank, self.world = torch.device(device), rank, world
        self.gen = torch.Generator(device=self.device).manual_seed(seed + SEED_OFFSET)
        adaptive = self.name == "ada"
        self.p = torch.tensor(float(cfg.p) if adaptive else 1.0, device=self.device)
        self.target = float(cfg.target) if adaptive else None
        self.interval = int(cfg.interval) if adaptive else None
        self.kimg, self.p_max = (float(cfg.kimg), float(cfg.p_max)) if adaptive else (None, 1.0)
        self.signs = torch.zeros(2, device=self.device)  # sum of sign(D(x_real)) and how many, since the last adjust

    def stat_names(self):
        """The scalars a training step adds: D's overfitting signal r_t, and ADA's p."""
        return ("Augment/rt", "Augment/p") if self.target is not None else ("Augment/rt",)

    # -- drawing ------------------------------------------------------------------------------------------

    def _rand(self, n, *shape, normal=False):
        """Per-image random numbers for this rank's n images: drawn for the global batch, this rank's slice."""
        draw = torch.randn if normal else torch.rand
        full = draw(n * self.world, *shape, generator=self.gen, device=self.device)
        return full[self.rank * n:(self.rank + 1) * n]

    def _chosen(self, n):
        """Which images an ADA operation applies to: each with probability p."""
        return self._rand(n) < self.p

    # -- the pipeline -------------------------------------------------------------------------------------

    def __call__(self, x):
        if self.name == "diffaugment":
            return self._diffaugment(x)
        return self._ada(x)

    def _diffaugment(self, x):
        """Zhao et al.'s operations in their order: colour (brightness, saturation, contrast), translation by up
        to 1/8 of the image with zeros shifted in, and cutout of a square half the image's side."""
        n = len(x)
        for op in self.ops:
            if op == "color":
                x = x + (self._rand(n, 1, 1, 1) - 0.5)  # brightness: +-0.5
                mean = x.mean(dim=1, keepdim=True)
                x = (x - mean) * (self._rand(n, 1, 1, 1) * 2) + mean  # saturation: x0 to x2 around the grey
                mean = x.mean(dim=(1, 2, 3), keepdim=True)
                x = (x - mean) * (self._rand(n, 1, 1, 1) + 0.5) + mean  # contrast: x0.5 to x1.5
            elif op == "translation":
                shift = _integer_shift(self._rand(n, 2), x.shape[-1], 0.125)
                x = _move_pixels(x, _translation(shift), reflect=False)
            elif op == "cutout":
                x = x * _cutout_mask(self._rand(n, 2), x.shape[-1], x.shape[-2], 0.5)
        return x

    def _ada(self, x):
        """Karras et al.'s operations, each on each image with probability p: x-flip, rotation by a multiple of
        90 degrees and integer translation (up to 1/8), which move whole pixels (borders reflected); isotropic
        scaling (lognormal, std 0.2 log 2), resampled bilinearly; brightness (normal, std 0.2), contrast
        (lognormal, std 0.5 log 2), saturation (lognormal, std log 2); cutout (a square half the image's side).
        Images no operation chose are returned unchanged, so p = 0 is the identity."""
        n = len(x)
        inverse = torch.eye(3, device=self.device).expand(n, 3, 3)  # output pixel -> input pixel (see _move_pixels)
        moved = torch.zeros(n, dtype=torch.bool, device=self.device)
        scale = None
        for op in self.ops:
            chosen, u = self._chosen(n), self._rand(n, 2)
            if op == "xflip":
                flip = chosen & (u[:, 0] < 0.5)
                inverse = inverse @ _diag(torch.where(flip, -1.0, 1.0), torch.ones(n, device=self.device))
                moved |= flip
            elif op == "rotate90":
                quarters = torch.where(chosen, (u[:, 0] * 4).floor().clamp(max=3), 0.0)
                inverse = inverse @ _quarter_turns(-quarters)
                moved |= chosen
            elif op == "translation":
                shift = torch.where(chosen[:, None], _integer_shift(u, x.shape[-1], 0.125), 0.0)
                inverse = inverse @ _translation(shift)
                moved |= chosen
            elif op == "scale":
                scale = torch.where(chosen, torch.exp2(self._rand(n, normal=True) * 0.2), 1.0), chosen
            elif op in ("brightness", "contrast", "saturation"):
                x = _colour(op, x, chosen, self._rand(n, normal=True))
            elif op == "cutout":
                x = x * torch.where(chosen[:, None, None, None], _cutout_mask(u, x.shape[-1], x.shape[-2], 0.5), 1.0)
        if {"xflip", "rotate90", "translation"} & set(self.ops):
            x = torch.where(moved[:, None, None, None], _move_pixels(x, inverse, reflect=True), x)
        if scale is not None:
            factor, chosen = scale
            x = torch.where(chosen[:, None, None, None], _rescale(x, factor), x)
        return x

    # -- ADA's controller ---------------------------------------------------------------------------------

    def observe(self, real_scores, boundary=0.0):
        """Count the signs of D's scores on (augmented) real images: the overfitting signal, kept on the device."""
        if self.target is not None:
            self.signs[0] += torch.sign(real_scores.detach().float() - boundary).sum()
            self.signs[1] += real_scores.numel()  # a Python number: no copy to the device, no sync

    def adjust(self, step, images_per_step):
        """Every `interval` steps: p moves by sign(r_t - target) x (images shown since) / (kimg x 1000), so
        that p can cross [0, 1] in kimg thousand real images; it stays in [0, p_max]. Returns r_t, or None
        between adjustments. No host sync: p and r_t stay tensors on the device."""
        if self.target is None or step % self.interval:
            return None
        total = dist.sum_over_ranks(self.signs)
        rt = total[0] / total[1].clamp(min=1)
        step_size = self.interval * images_per_step / (self.kimg * 1000)
        self.p = (self.p + torch.sign(rt - self.target) * step_size).clamp(0.0, self.p_max)
        self.signs.zero_()
        return rt

    def state_dict(self):
        return {"p": self.p.cpu(), "rng": self.gen.get_state(), "signs": self.signs.cpu()}

    def load_state_dict(self, state):
        self.p = state["p"].to(self.device)
        self.gen.set_state(state["rng"])
        self.signs = state["signs"].to(self.device)


def preview(cfg_augment, images, p=None, seed=0):
    """images in [-1, 1] through a run's augmentation, on a generator of their own (training's is untouched);
    ADA at probability p (default: its p_max, the most training can reach)."""
    aug = Augment(cfg_augment, images.device, seed)
    if aug.target is not None:
        aug.p = torch.tensor(float(cfg_augment.p_max if p is None else p), device=images.device)
    return aug(images.float())


def build(cfg_augment, cfg_data, device, seed, rank=0, world=1):
    """The run's augmentation, or None for augment=none."""
    from gan_cli import toy

    if cfg_augment.name == "none":
        return None
    if toy.is_toy(cfg_data):
        raise ConfigError(f"augment={cfg_augment.name} transforms images; the toy data's points have none: "
                          "drop the augment option")
    return Augment(cfg_augment, device, seed, rank, world)


# -- helpers: per-image matrices and operations ----------------------------------------------------------
# Whole-pixel maps work in doubled, centred pixel coordinates, u = 2 j - (size - 1): integers, in which flips,
# quarter turns and whole-pixel shifts are integer matrices, so every output pixel is exactly an input pixel.


def _diag(a, b):
    """(n, 3, 3) diag(a, b, 1)."""
    m = torch.zeros(len(a), 3, 3, device=a.device)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = a, b, 1
    return m


def _quarter_turns(k):
    """(n, 3, 3) rotations by k x 90 degrees, as exact integer matrices."""
    k = k.remainder(4)
    c = torch.where(k == 0, 1.0, torch.where(k == 2, -1.0, 0.0))
    s = torch.where(k == 1, 1.0, torch.where(k == 3, -1.0, 0.0))
    m = _diag(c, c)
    m[:, 0, 1], m[:, 1, 0] = -s, s
    return m


def _translation(shift):
    """(n, 3, 3) maps that read each output pixel `shift` (x, y) pixels back: the picture moves by shift."""
    m = _diag(torch.ones(len(shift), device=shift.device), torch.ones(len(shift), device=shift.device))
    m[:, :2, 2] = -2 * shift  # doubled coordinates
    return m


def _integer_shift(u, size, ratio):
    """(n, 2) whole-pixel shifts in [-ratio x size, ratio x size] from uniforms u in [0, 1)."""
    reach = round(ratio * size)
    return (u * (2 * reach + 1)).floor() - reach


def _move_pixels(x, inverse, reflect):
    """Each output pixel copied from the input pixel the integer map `inverse` names (a gather, so gradients
    reach the input); outside the image: mirrored back in (reflect) or zeros."""
    n, c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    centred = torch.stack([2 * xs - (w - 1), 2 * ys - (h - 1), torch.ones_like(xs)]).reshape(3, -1).float()
    source = (inverse @ centred).round()  # (n, 3, h w): exact integers already; round() guards the float
    sx, sy = ((source[:, 0] + w - 1) / 2).long(), ((source[:, 1] + h - 1) / 2).long()
    if reflect:
        sx, sy = _mirror(sx, w), _mirror(sy, h)
        inside = None
    else:
        inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
        sx, sy = sx.clamp(0, w - 1), sy.clamp(0, h - 1)
    moved = x.flatten(2).gather(2, (sy * w + sx)[:, None, :].expand(n, c, -1)).view(n, c, h, w)
    return moved if inside is None else moved * inside.view(n, 1, h, w)


def _mirror(i, size):
    """Indices reflected into [0, size): ... 1 0 | 0 1 ... size-1 | size-1 size-2 ..."""
    i = i.remainder(2 * size)
    return torch.where(i >= size, 2 * size - 1 - i, i)


def _rescale(x, factor):
    """x scaled about its centre by `factor` per image (bilinear, borders reflected)."""
    theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factor  # output -> input: a picture grown by s samples 1/s as far out
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _cutout_mask(u, width, height, ratio):
    """(n, 1, H, W) ones with a zero square of side ratio x size centred at a uniform pixel (cut at borders)."""
    half = round(ratio * width) / 2
    cx, cy = (u[:, 0] * width).floor(), (u[:, 1] * height).floor()
    xs = torch.arange(width, device=u.device)[None, None, :]
    ys = torch.arange(height, device=u.device)[None, :, None]
    inside = ((xs - cx[:, None, None]).abs() < half) & ((ys - cy[:, None, None]).abs() < half)
    return (~inside).to(torch.float32)[:, None]


def _colour(op, x, chosen, z):
    """ADA's colour operations on the chosen images (the others stay as they are, bit for bit): brightness
    adds, contrast scales around the image's mean, saturation scales the distance from the grey (the channel
    mean; a greyscale image has no saturation)."""
    if op == "brightness":
        changed = x + z[:, None, None, None] * 0.2
    else:
        factor = torch.exp2(z * (0.5 if op == "contrast" else 1.0))[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3) if op == "contrast" else 1, keepdim=True)
        changed = (x - mean) * factor + mean
    return torch.where(chosen[:, None, None, None], changed, x)
