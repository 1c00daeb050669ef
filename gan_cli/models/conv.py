"""Convolutions computed as matrix products when training in bfloat16 on the CPU.

oneDNN's bfloat16 convolution kernels run below the CPU's bfloat16 matrix rate, most of all for weight gradients
(DCGAN D's 128->256 layer at batch 64 on an AMX Xeon: 14.5 ms against 5.1 ms for its forward pass;
`benchmarks/conv_kernels.py --layers`). The same quantities as products with kernel windows (im2col) run at
the matrix rate: the weight gradient always, and on CPUs with AMX tiles the forward pass and input gradient
for inputs of many channels too (README "Speed"). Same parameters, so checkpoints do not change; float32,
CUDA and torch.compile keep torch's own kernels.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _has_amx():
    """Whether this CPU has AMX tiles (torch's private check; False on a torch without it)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


CHUNK = 2**22  # window elements per product: bounds the memory these buffers take
# Inputs with this many channels or more also run the forward pass and input gradient as products. With AMX
# (Intel Xeon) oneDNN is as fast or faster below 128 channels; with AVX512-BF16 alone (AMD EPYC) at every width.
MIN_CHANNELS = 128 if _has_amx() else 2**31
FOLD_MAX_COLUMNS = 16  # kernel values per input pixel (C * kh * kw) up to which the adjoint scatters patches
SPLIT = 2  # parts of each weight-gradient sum, one batched product


def matmul_pays(x):
    """Whether this convolution should run as matrix products: under bfloat16 autocast on the CPU (in float32
    oneDNN's kernels are as fast), and not inside torch.compile, which picks its own kernels."""
    return (x.device.type == "cpu" and not torch.compiler.is_compiling() and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def _one_window(size, kernel, padding):
    """Whether the kernel covers the whole unpadded input (D's last layer): then a convolution is a plain product."""
    return tuple(size) == tuple(kernel) and not any(padding)


def windows(x, kernel, stride, padding):
    """Every kernel window of x (B, C, H, W): (B * OH * OW, kh * kw * C), channels fastest."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if _one_window(x.shape[2:], kernel, padding):  # one window per image, the image itself: no copy
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))  # (B, H, W, C): a view if x is channels-last
    win = padded.unfold(1, kh, sh).unfold(2, kw, sw)  # (B, OH, OW, C, kh, kw)
    return win.permute(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x.shape[1])


def _accumulator(dtype):
    return torch.promote_types(dtype, torch.float32)


def _by_chunks(n, per_item):
    step = max(1, CHUNK // per_item)
    return [slice(start, start + step) for start in range(0, n, step)]


def _as_matrix(w):
    """(O, C, kh, kw) -> (O, kh * kw * C), the order of `windows`' columns."""
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


def conv(x, w, stride, padding):
    """conv2d(x, w): windows(x) @ w^T where each window has many channels or is the whole image, oneDNN otherwise."""
    B, C, H, W = x.shape
    O, _, kh, kw = w.shape
    if C < MIN_CHANNELS and not _one_window((H, W), (kh, kw), padding):
        return F.conv2d(x, w, None, stride, padding)
    OH, OW = (H + 2 * padding[0] - kh) // stride[0] + 1, (W + 2 * padding[1] - kw) // stride[1] + 1
    out = torch.empty(B, O, OH, OW, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    rows, wm = out.permute(0, 2, 3, 1), _as_matrix(w).t()  # rows: a view of out, (B, OH, OW, O) contiguous
    for part in _by_chunks(B, OH * OW * kh * kw * C):
        torch.mm(windows(x[part], (kh, kw), stride, padding), wm, out=rows[part].view(-1, O))
    return out


def conv_adjoint(g, w, size, stride, padding):
    """The adjoint of conv(., w) applied to g (B, O, OH, OW), onto inputs of `size` (H, W): the input gradient
    of a convolution, the forward pass of a transposed one.

    With the kernel a multiple of the stride (k = s * q), input pixel s * t + a (before cropping the padding)
    gathers g[t - d] * w[s * d + a] for d < q: every phase a of the input is a q x q convolution of g, and all
    phases together are one product of g's q x q windows with w rearranged, then interleaved. Onto a single
    channel, g's pixels times w are the output's overlapping patches, summed by F.fold (col2im): 2.2-2.7x faster
    than oneDNN's kernel for DCGAN's 64->1 layers (README "Speed"). oneDNN's kernel where the windows have few
    channels or the kernel is not a multiple of the stride."""
    B, O, OH, OW = g.shape
    _, C, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    if _one_window(size, (kh, kw), padding):  # one window: an outer product
        return (g.reshape(B, O) @ _as_matrix(w)).view(B, kh, kw, C).permute(0, 3, 1, 2)
    if C * kh * kw <= FOLD_MAX_COLUMNS:  # onto one channel (an image): each pixel's kernel-sized patch, summed
        patches = torch.matmul(w.reshape(O, -1).t(), g.reshape(B, O, OH * OW)).to(_accumulator(g.dtype))
        out = F.fold(patches, tuple(size), (kh, kw), padding=padding, stride=stride)
        return out.to(g.dtype).contiguous(memory_format=torch.channels_last)
    if C < MIN_CHANNELS or kh % sh or kw % sw:
        extra = [n - ((m - 1) * s - 2 * p + k) for n, m, s, p, k in zip(size, (OH, OW), stride, padding, (kh, kw))]
        return F.conv_transpose2d(g, w, None, stride, padding, extra)
    qh, qw = kh // sh, kw // sw
    # rows: window taps (e_h, e_w, o) with d = q - 1 - e; columns: phases (a, b) and input channels c
    wm = w.view(O, C, qh, sh, qw, sw).flip(2, 4).permute(2, 4, 0, 3, 5, 1).reshape(qh * qw * O, sh * sw * C)
    TH, TW = OH + qh - 1, OW + qw - 1
    full = g.new_empty(B, TH, sh, TW, sw, C)
    for part in _by_chunks(B, TH * TW * qh * qw * O):
        phases = windows(g[part], (qh, qw), (1, 1), (qh - 1, qw - 1)) @ wm
        full[part] = phases.view(-1, TH, TW, sh, sw, C).permute(0, 1, 3, 2, 4, 5)
    H, W = size
    out = torch.empty(B, C, H, W, dtype=g.dtype, device=g.device, memory_format=torch.channels_last)
    out.permute(0, 2, 3, 1).copy_(full.view(B, TH * sh, TW * sw, C)[:, ph:ph + H, pw:pw + W])
    return out


def weight_grad(x, g, kernel, stride, padding):
    """d<g, conv2d(x, w)>/dw, shape (O, C, kh, kw), in float32: a sum over batch chunks of g^T @ windows(x).

    Each chunk's sum is one batched product of SPLIT parts of its rows, added in float32: on the EPYC's two
    threads DCGAN-32's steps ran as fast or up to 5% faster than with one product per chunk (README "Speed").
    The parts are added one by one into a float32 copy of the first: `sum(0, dtype=float32)` first casts every
    part to float32 (0.29 against 0.06 ms for D's 128->256 layer)."""
    B, C = x.shape[:2]
    O = g.shape[1]
    total = None
    for part in _by_chunks(B, g.shape[2] * g.shape[3] * kernel[0] * kernel[1] * C):
        rows, win = g[part].permute(0, 2, 3, 1).reshape(-1, O), windows(x[part], kernel, stride, padding)
        n = SPLIT if len(rows) % SPLIT == 0 else 1
        for product in torch.bmm(rows.view(n, -1, O).transpose(1, 2), win.view(n, -1, win.shape[1])):
            total = product.to(_accumulator(x.dtype)) if total is None else total.add_(product)
    return total.view(O, *kernel, C).permute(0, 3, 1, 2)


class _Convolution(torch.autograd.Function):
    """conv2d or conv_transpose2d without bias, dilation, groups or output padding, in `dtype` as autocast
    computes it; the weight's gradient comes back in float32 without a round trip through `dtype`."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, transposed, dtype):
        x, w = x.to(dtype), weight.to(dtype)
        ctx.inputs, ctx.geometry = (x, w), (stride, padding, transposed)
        if not transposed:
            return conv(x, w, stride, padding)
        size = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding, w.shape[2:])]
        return conv_adjoint(x, w, size, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        (x, w), (stride, padding, transposed) = ctx.inputs, ctx.geometry
        del ctx.inputs
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (conv(grad, w, stride, padding) if transposed
                      else conv_adjoint(grad, w, x.shape[2:], stride, padding))
        if ctx.needs_input_grad[1]:
            kernel = tuple(w.shape[2:])
            # a transposed convolution is the adjoint of a convolution from its output to its input
            grad_w = (weight_grad(grad, x, kernel, stride, padding) if transposed
                      else weight_grad(x, grad, kernel, stride, padding))
        return grad_x, grad_w, None, None, None, None


def _convolve(layer, x, transposed):
    dtype = torch.get_autocast_dtype("cpu")
    with torch.autocast("cpu", enabled=False):
        y = _Convolution.apply(x, layer.weight, list(layer.stride), list(layer.padding), transposed, dtype)
    return y if layer.bias is None else y + layer.bias.to(y.dtype).view(1, -1, 1, 1)


def _plain(layer):
    return (layer.groups == 1 and layer.dilation == (1, 1) and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str) and layer.output_padding in ((0, 0), 0))


class Conv2d(nn.Conv2d):
    def forward(self, x):
        return _convolve(self, x, False) if matmul_pays(x) and _plain(self) else super().forward(x)


class ConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x, output_size=None):
        if matmul_pays(x) and _plain(self) and output_size is None:
            return _convolve(self, x, True)
        return super().forward(x, output_size)
