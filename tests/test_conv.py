"""Convolutions as matrix products (models/conv.py): the same function and gradients as torch's, taken only
under bfloat16 autocast on the CPU, inside whole nets too."""

import pytest
import torch
import torch.nn.functional as F

from gan_cli import models
from gan_cli.models import conv

# (in channels, out channels, size, kernel, stride, padding, transposed): DCGAN's layers and the odd ones
CASES = [(6, 5, 8, 4, 2, 1, False), (6, 5, 9, 4, 2, 1, False), (5, 6, 4, 4, 2, 1, True), (7, 1, 7, 7, 1, 0, False),
         (4, 4, 7, 3, 1, 1, False), (4, 3, 5, 3, 1, 1, True), (3, 4, 9, 3, 2, 1, False), (3, 2, 5, 3, 2, 1, True),
         (1, 5, 9, 4, 2, 1, False), (5, 1, 4, 4, 2, 1, True)]  # the last two: onto one channel (F.fold)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + ("T" if c[6] else ""))
@pytest.mark.parametrize("min_channels", [1, 10**6], ids=["matmul", "onednn"])
@pytest.mark.parametrize("split", [2, 3])
def test_output_and_both_gradients_equal_torchs(monkeypatch, case, min_channels, split):
    """In float64, so any wrong index shows; tiny chunks, so the chunked sums are exercised too, and weight
    gradients split in parts where a chunk's rows divide evenly and in one product where not."""
    c_in, c_out, size, k, s, p, transposed = case
    monkeypatch.setattr(conv, "MIN_CHANNELS", min_channels)
    monkeypatch.setattr(conv, "CHUNK", 64)
    monkeypatch.setattr(conv, "SPLIT", split)
    torch.manual_seed(0)
    x = torch.randn(5, c_in, size, size, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(*((c_in, c_out) if transposed else (c_out, c_in)), k, k, dtype=torch.float64)
    x.requires_grad_(), w.requires_grad_()
    ours = conv._Convolution.apply(x, w, [s, s], [p, p], transposed, torch.float64)
    theirs = (F.conv_transpose2d if transposed else F.conv2d)(x, w, None, s, p)
    g = torch.randn_like(theirs)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-12)
    for a, b in zip(torch.autograd.grad((ours * g).sum(), (x, w)), torch.autograd.grad((theirs * g).sum(), (x, w))):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("layer", ["Conv2d", "ConvTranspose2d"])
def test_layers_take_the_matmul_path_only_under_bf16_autocast_on_the_cpu(monkeypatch, layer):
    torch.manual_seed(0)
    ours, plain = getattr(conv, layer)(8, 16, 4, 2, 1), getattr(torch.nn, layer)(8, 16, 4, 2, 1)  # with bias
    plain.load_state_dict(ours.state_dict())
    calls = []
    monkeypatch.setattr(conv, "weight_grad", lambda *a, f=conv.weight_grad: calls.append(1) or f(*a))
    x = torch.randn(4, 8, 8, 8)
    double = {name: p.detach().double() for name, p in plain.named_parameters()}
    exact = torch.func.grad(lambda w: torch.func.functional_call(plain, {**double, "weight": w}, (x.double(),))
                            .square().sum())(double["weight"])

    ours(x).square().sum().backward(), plain(x).square().sum().backward()  # float32: torch's own kernels
    assert not calls and torch.equal(ours.weight.grad, plain.weight.grad)

    ours.zero_grad(), plain.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_ours, y_plain = ours(x), plain(x)
    y_ours.float().square().sum().backward(), y_plain.float().square().sum().backward()
    assert calls and y_ours.dtype == torch.bfloat16 and ours.weight.grad.dtype == torch.float32
    assert torch.allclose(y_ours.float(), y_plain.float(), rtol=0.02, atol=0.02)
    error = lambda grad: ((grad.double() - exact).norm() / exact.norm()).item()
    assert error(ours.weight.grad) <= 1.1 * error(plain.weight.grad) + 1e-4  # no less accurate than oneDNN's


def test_a_whole_dcgan_gets_the_same_gradients_either_way(monkeypatch):
    """G and D as trained (channels-last, in-place LeakyReLU after convolutions, batch norm, spectral norm):
    every parameter's bfloat16 gradient from the matrix products matches oneDNN's."""
    monkeypatch.setattr(conv, "MIN_CHANNELS", 1)  # every layer of these small nets through the products
    grads = {}
    for name, pays in (("matmul", conv.matmul_pays), ("onednn", lambda x: False)):
        monkeypatch.setattr(conv, "matmul_pays", pays)
        torch.manual_seed(0)
        G, D = models.build({"name": "dcgan", "g_features": 8, "d_features": 8, "d_norm": "spectral", "g_extra": 1},
                            16, 3, 32)
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = D(G(torch.randn(6, 16))).float()
        F.softplus(-logits).mean().backward()
        grads[name] = [p.grad for p in (*G.parameters(), *D.parameters())]
    for a, b in zip(*grads.values()):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        assert ((a - b).norm() / b.norm()).item() < 0.05
