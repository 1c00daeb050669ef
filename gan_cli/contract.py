"""The contract G and D must keep, checked on one batch before training: G(z) is (m, C, H, W) in [-1, 1],
D(x) is one finite score per image. Each finding names the class, what it returned and what was expected,
in words a student can act on; gan-train stops at the first fault, gan-lab lists them all."""

import logging
from dataclasses import dataclass

import torch
from torch import nn

from gan_cli.errors import ConfigError
from gan_cli.models import call

log = logging.getLogger(__name__)


@dataclass
class Finding:
    check: str
    ok: bool
    message: str
    fault: bool = True  # False: a warning, training goes on


def _shape(t):
    return str(tuple(t.shape))


def _last_leaf(net):
    """The last layer that computes something (reshaping layers skipped): where a sigmoid would sit."""
    leaves = [m for m in net.modules() if not list(m.children())
              and not isinstance(m, (nn.Flatten, nn.Unflatten, nn.Identity))]
    return leaves[-1] if leaves else None


@torch.no_grad()
def _run(net, x, y=None):
    """net(x) (or net(x, y)) in eval mode (dropout off, batch-norm statistics untouched), then the mode it had."""
    was_training = net.training
    net.eval()
    try:
        return call(net, x, y)
    finally:
        net.train(was_training)


def _labels(y):
    return "" if y is None else f" and labels of shape {_shape(y)} (a conditional model: forward(self, x, y))"


def generator_findings(G, z, shape, y=None):
    """Findings for G on the noise z (m, latent_dim) and, for a conditional G, labels y (m,); `shape` is one
    sample's (C, H, W)."""
    name, m = type(G).__name__, len(z)
    try:
        out = _run(G, z, y)
    except Exception as e:
        return [Finding("G runs", False, f"{name} fails on noise of shape {_shape(z)}{_labels(y)}: "
                        f"{type(e).__name__}: {e}")]
    if not isinstance(out, torch.Tensor):
        return [Finding("G shape", False, f"{name} returns a {type(out).__name__}; it should return one tensor of images")]
    expected = (m, *shape)
    found = [Finding("G runs", True, f"{name} runs on noise of shape {_shape(z)}")]
    if tuple(out.shape) != expected:
        hint = ""
        if out.numel() == m * torch.Size(shape).numel():
            hint = f"; reshape it with .view(-1, {', '.join(map(str, shape))})"
        found.append(Finding("G shape", False, f"{name} returns shape {_shape(out)} for {m} noise vectors; "
                             f"expected {expected}: {m} images of {shape[0]} channel(s), {shape[1]}x{shape[2]}{hint}"))
        return found
    found.append(Finding("G shape", True, f"{name} returns {m} images of shape {tuple(shape)}"))
    if not torch.isfinite(out).all():
        found.append(Finding("G finite", False, f"{name} returns inf or NaN values; check its layers and initialisation"))
        return found
    low, high = out.min().item(), out.max().item()
    if low < -1 - 1e-4 or high > 1 + 1e-4:
        found.append(Finding("G range", False, f"{name} returns values in [{low:.2f}, {high:.2f}], but the images it must "
                             "imitate lie in [-1, 1]; end G with torch.tanh (nn.Tanh())"))
    elif low >= 0 and isinstance(_last_leaf(G), nn.Sigmoid):
        found.append(Finding("G range", False, f"{name} ends in a sigmoid, so its images lie in [0, 1] while the data "
                             "lies in [-1, 1]: it can never draw black. Use nn.Tanh() as its last layer", fault=False))
    else:
        found.append(Finding("G range", True, f"{name}'s values lie in [{low:.2f}, {high:.2f}], inside [-1, 1]"))
    return found


def discriminator_findings(D, x, d_output="auto", y=None):
    """(findings for D on the images x (and labels y), whether D's outputs are probabilities rather than logits)."""
    name, m = type(D).__name__, len(x)
    try:
        out = _run(D, x, y)
    except Exception as e:
        return [Finding("D runs", False, f"{name} fails on images of shape {_shape(x)}{_labels(y)}: "
                        f"{type(e).__name__}: {e}")], False
    if not isinstance(out, torch.Tensor):
        return [Finding("D shape", False, f"{name} returns a {type(out).__name__}; it should return one tensor of "
                        "scores")], False
    found = [Finding("D runs", True, f"{name} runs on images of shape {_shape(x)}")]
    if tuple(out.shape) not in ((m,), (m, 1)):
        per_image = out[0].numel() if out.dim() and len(out) == m else None
        if per_image is not None and per_image != 1:
            message = (f"{name} returns {per_image} numbers per image (output shape {_shape(out)}); it should return "
                       f"one: shape ({m},) or ({m}, 1)")
        else:
            message = f"{name} returns shape {_shape(out)} for {m} images; expected ({m},) or ({m}, 1): one score each"
        return found + [Finding("D shape", False, message)], False
    found.append(Finding("D shape", True, f"{name} returns one score per image, shape {_shape(out)}"))
    if not torch.isfinite(out).all():
        return found + [Finding("D finite", False, f"{name} returns inf or NaN scores")], False
    in_unit = bool(((out >= 0) & (out <= 1)).all())
    if d_output == "auto":
        probability = in_unit and isinstance(_last_leaf(D), nn.Sigmoid)
    else:
        probability = d_output == "probability"
        if probability and not in_unit:
            return found + [Finding("D output", False, f"model.d_output=probability, but {name} returns scores outside "
                                    "[0, 1]; end it with nn.Sigmoid() or set model.d_output=logits")], False
    kind = ("probabilities (it ends in a sigmoid): the losses take their logit" if probability
            else "logits: the losses apply the sigmoid themselves")
    found.append(Finding("D output", True, f"{name}'s scores are read as {kind}"))
    return found, probability


def check(G, D, z, real, d_output="auto", y=None):
    """gan-train's start-up check: raise ConfigError (exit 2) at the first fault, log warnings; returns whether
    D's outputs are probabilities. y: labels for a conditional G and D."""
    g_found = generator_findings(G, z, tuple(real.shape[1:]), y)
    d_found, probability = discriminator_findings(D, real, d_output, y)
    for f in g_found + d_found:
        if not f.ok and f.fault:
            raise ConfigError(f.message)
        if not f.ok:
            log.warning(f.message)
    if probability:
        log.info("D ends in a sigmoid: its outputs are read as probabilities, and the losses take their logit")
    return probability
