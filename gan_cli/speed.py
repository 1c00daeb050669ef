"""How the hot loop runs on a device: autocast precision, memory format, compilation, optimizer kernels,
and when losses are checked for inf/NaN. None of it changes the algorithm; `auto` picks per device.
"""

import inspect
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

DTYPES = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass(frozen=True)
class Speed:
    device: torch.device
    dtype: Optional[torch.dtype] = None  # autocast dtype; None: float32 throughout
    channels_last: bool = False
    compile: bool = False
    check_each_step: bool = True  # inf/NaN checked before every optimizer step (one host sync per phase)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    def scaler(self):
        """A GradScaler for one network: active for float16 only, a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype is torch.float16)

    def prepare(self, net):
        """The net on its device, in the memory format its convolutions run fastest in, compiled if asked."""
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile()  # in place: state_dict keys stay those of the plain module
        return net

    def batch(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def optimizer(self, partial, params):
        """The configured optimizer, with its fused kernel (one kernel for all parameters) where it has one."""
        fused = "fused" in inspect.signature(partial.func).parameters and self.device.type in ("cpu", "cuda")
        return partial(params, fused=True) if fused else partial(params)


def bf16_fast(device):
    """Whether bfloat16 autocast makes this trainer's steps faster here: on a CPU with bfloat16 matrix units
    (AMX/AVX512-BF16). Not on CUDA: there these small nets wait on kernel launches, not arithmetic, and
    autocast's casts add launches (H200: 115 vs 133 steps/s for DCGAN 28x28 at batch 64, docs/performance.md)."""
    if device.type != "cpu":
        return False
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve(t, device, convolutional, builtin=True):
    """Speed settings from the trainer config (checked by schema.check_train); `auto` means what measured
    fastest without hurting quality, on gan-cli's own models: a custom model (`builtin=False`) keeps float32,
    since bfloat16 would round a sigmoid D's outputs near 1 to 1."""
    precision = str(t.precision).lower()
    if precision == "auto":
        precision = "bf16" if builtin and bf16_fast(device) else "32"
    channels_last = str(t.channels_last).lower()
    finite_check = str(t.finite_check).lower()
    # On the CPU every op has finished when it returns, so a check costs nothing; on CUDA it stalls the queue.
    check_each_step = finite_check == "step" or (finite_check == "auto" and device.type != "cuda")
    return Speed(device, DTYPES[precision],
                 channels_last=convolutional if channels_last == "auto" else channels_last == "true",
                 compile=bool(t.compile), check_each_step=check_each_step)


def has_batch_norm(net):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
