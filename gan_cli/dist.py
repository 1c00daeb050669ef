"""Training on several processes, as torchrun launches them: DistributedDataParallel on PyTorch's own engine.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them this is one process
and every function here is a no-op. Rank 0 decides (the run folder, whether to stop) and writes (logs,
checkpoints, samples); the others follow. batch_size is per process: the global batch is batch_size x WORLD_SIZE.
"""

import atexit
import gc
import os
import re
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gan_cli.errors import ConfigError, EnvironmentProblem

TIMEOUT = timedelta(minutes=10)  # a collective that waits this long means a peer is gone: fail, never hang


def world_size():
    return int(os.environ.get("WORLD_SIZE", 1))


def rank():
    return int(os.environ.get("RANK", 0))


def is_main():
    return rank() == 0


def init():
    """Join the process group (gloo for CPU tensors, nccl for CUDA ones) once, if torchrun started us."""
    if world_size() > 1 and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        atexit.register(close)  # whoever called init (gan-train, a script calling train()) leaves before exit


def device(requested):
    """Each process drives its own GPU (LOCAL_RANK); on the CPU all share it."""
    if world_size() > 1 and requested.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return requested


def from_main(value):
    """Rank 0's value of a picklable object, on every rank."""
    if world_size() == 1:
        return value
    init()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def max_over_ranks(value):
    """The largest of every rank's int: a CPU tensor over gloo, so CUDA's queue is not synchronised."""
    if world_size() == 1:
        return value
    t = torch.tensor([int(value)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_cpu_group())
    return int(t.item())


def sum_over_ranks(t):
    """t summed over the ranks (a copy; t itself in one process)."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return t


def mean_over_ranks(t):
    """t averaged over the ranks (read once per log window, so the logged losses are the global batch's)."""
    return sum_over_ranks(t) / world_size() if world_size() > 1 else t


_CPU_GROUP = []


def _cpu_group():
    if not _CPU_GROUP:
        _CPU_GROUP.append(dist.new_group(backend="gloo") if torch.cuda.is_available() else dist.group.WORLD)
    return _CPU_GROUP[0]


def wrap(net, dev, sync_batch_norm=False):
    """net for the phase that updates it: gradients averaged over the ranks (DDP), or net itself in one process.

    Batch norm: by default each rank normalises with its own batch's statistics and the running statistics
    are rank 0's (DDP broadcasts buffers); sync_batch_norm normalises with the global batch's instead.
    """
    if world_size() == 1:
        return net
    if sync_batch_norm:
        if dev.type != "cuda":
            raise ConfigError("trainer.sync_batch_norm needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); "
                              "drop it on CPU")
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)


def unwrap(net):
    return net.module if isinstance(net, DistributedDataParallel) else net


# What a collective raises when another rank died: gloo reports a closed connection as a plain RuntimeError,
# so a RuntimeError counts only when its message names the transport (a shape error stays a shape error).
_PEER_WORDS = re.compile(r"gloo|nccl|connection|peer|timed? ?out|socket|broken pipe", re.IGNORECASE)


def is_lost_peer(error):
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and bool(_PEER_WORDS.search(str(error))))


def lost_peer(error):
    """The one clear message for a collective that failed because another rank died or hung."""
    first = re.sub(r"^\[[^\]]*\]\s*", "", str(error).splitlines()[0] if str(error) else type(error).__name__)
    return EnvironmentProblem(f"rank {rank()}: lost contact with the other ranks ({first[:120]}); "
                              "another process stopped or was killed, see its log; resume with resume=<run folder>")


def close():
    """Leave the process group and drop the reference cached here, while the interpreter is whole: a group that
    outlives destroy_process_group (here, or in a DDP wrapper: train drops those) is torn down during shutdown,
    where gloo can abort the process (SIGABRT, "terminate called without an active exception") after training
    has finished and saved. Runs at exit by itself (init registers it); gan-train calls it sooner."""
    if dist.is_initialized():
        _CPU_GROUP.clear()
        gc.collect()  # DDP wrappers sit in reference cycles: free them (and their hold on the group) first
        dist.destroy_process_group()
