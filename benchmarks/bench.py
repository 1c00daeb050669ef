"""make bench: images/s and peak memory of gan-cli's trainer against a tutorial-style loop, side by side.

Each case runs in its own process (so peak memory is that case's alone), on a synthetic MNIST written in
torchvision's raw layout: speed does not depend on what the pixels show, and nothing is downloaded. On a
virtual machine the host may run other guests on our CPUs ("steal", /proc/stat): a run that lost more than
--max-steal of its CPU time that way is repeated (--retries times) and the least contended run kept; the
table shows each kept run's steal.

    python benchmarks/bench.py                       # the full table -> outputs/bench/results.json
    python benchmarks/bench.py --cases mlp-28-64 --seconds 5
    python benchmarks/bench.py --scaling --cases mlp-28-64,dcgan-32-64 --out outputs/bench/scaling.json

`make docs-tables` then copies the tables into docs/performance.md.
"""

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# model-size-batch; any such name works with --cases (e.g. dcgan-28-64, the default gan-train on MNIST)
CASES = [f"{model}-{size}-{batch}" for model, size in (("mlp", 28), ("dcgan", 32), ("dcgan", 64)) for batch in (64, 256)]


def write_mnist(root, n=5000, seed=0):
    """A stand-in MNIST (random digit-sized strokes) in torchvision's raw IDX layout."""
    import struct

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("t10k", 100)):
        for kind, array in (("images", rng.integers(0, 256, (count, 28, 28))), ("labels", rng.integers(0, 10, count))):
            with open(raw / f"{split}-{kind}-idx{array.ndim}-ubyte", "wb") as f:
                f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
                f.write(array.astype(np.uint8).tobytes())


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_ticks():
    """(steal, all) CPU ticks since boot (/proc/stat). Steal is time a virtual machine's host ran something
    else while this machine had work: the share of it in a run says how contended the run was."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return ticks[7], sum(ticks)


# ---------------------------------------------------------------------------------------------------------
# The reference: the tutorial style (PyTorch DCGAN tutorial, countless MNIST GAN scripts).

def reference(kind, size, batch, root, seconds, device):
    """torchvision dataset + DataLoader + per-sample ToTensor/Normalize, sigmoid + BCELoss, plain Adam."""
    import torchvision.transforms as T
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST

    from gan_cli.models import build

    steps = [T.Resize(size)] if size != 28 else []
    ds = MNIST(root, train=True, download=False, transform=T.Compose([*steps, T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    G, D = build(_model_cfg(kind), 100, (1, size, size))
    G, D = G.to(device), nn.Sequential(D, nn.Sigmoid()).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()

    def batches():
        while True:
            yield from loader

    def step(batch_and_labels):
        real = batch_and_labels[0].to(device)
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
        D.zero_grad()
        err_real = bce(D(real).view(-1), ones)
        err_real.backward()
        fake = G(torch.randn(batch, 100, device=device))
        err_fake = bce(D(fake.detach()).view(-1), zeros)
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        err_g = bce(D(fake).view(-1), ones)
        err_g.backward()
        opt_g.step()
        return err_real.item() + err_fake.item(), err_g.item()  # the tutorial prints these every step

    return _time(step, batches(), batch, seconds, device)


def _model_cfg(kind):
    if kind == "mlp":
        return {"name": "mlp", "g_hidden": [256, 512, 1024], "d_hidden": [1024, 512, 256], "dropout": 0.3}
    return {"name": "dcgan", "g_features": 64, "d_features": 64, "d_norm": "batch", "g_extra": 0, "d_extra": 0}


def _time(step, batches, batch, seconds, device, warmup=5, probe=5):
    """images/s over about `seconds` of steps, after `warmup` steps. How many steps is counted from the speed of
    `probe` steps, and under torchrun every rank takes the largest rank's count: DDP pairs the ranks'
    collectives step by step, so a rank that stopped one step early would leave the others waiting on it."""
    from gan_cli import dist

    def run(k):  # seconds that k steps take
        tic = time.perf_counter()
        for _ in range(k):
            step(next(batches))
        sync(device)
        return time.perf_counter() - tic

    run(warmup)
    n = dist.max_over_ranks(max(probe, math.ceil(seconds * probe / run(probe))))
    return n * batch / run(n)


def sync(device):
    """Wait for the device: CUDA runs behind the host, so time the work, not the launches."""
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------
# gan-cli: the real config composed by Hydra, the real trainer's hot loop (loop.train_step).

DATA = {  # --data: how gan-cli's side reads the images at --root
    "mnist": lambda root: ["data=mnist", f"data.root={root}", "data.download=false"],
    "folder": lambda root: ["data=folder", f"data.path={root}", "data.channels=1"],
    "mnist5k": lambda root: ["data=mnist5k"],
}


def ours(kind, size, batch, root, seconds, device, overrides=(), data="mnist", batches=None):
    """`batches(cfg, device)`, if given, replaces gan-cli's batch source (the ImageFolder reference)."""
    from hydra import compose, initialize_config_module

    from gan_cli import dist, loop, train  # importing train registers the schemas, as the entry point does

    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"model={kind}", *DATA[data](root), f"data.image_size={size}",
                                          f"batch_size={batch}", f"device={device}", "trainer.log_every=50", *overrides])
    dist.init()
    s, data_src, loss = train.build(cfg)
    data_src = batches(cfg, device) if batches else data_src
    stats = []

    def step(_):
        stats.append(loop.train_step(s, loss, data_src, cfg, device))
        if len(stats) == cfg.trainer.log_every:  # the trainer reads its accumulated scalars once per window
            torch.stack(stats).sum(0).tolist()
            stats.clear()

    # Every rank steps in lockstep (gradients are averaged each step): global speed = this rank's x world size.
    return _time(step, iter(int, 1), batch, seconds, device) * dist.world_size()


def imagefolder(kind, size, batch, root, seconds, device, overrides=()):
    """The ImageFolder path: torchvision's ImageFolder decodes, resizes and normalises every file again each
    epoch in 2 persistent DataLoader workers (how gan-cli read folders before it prepared them once),
    feeding gan-cli's own train step."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    def batches(cfg, device):
        steps = T.Compose([T.Resize(size), T.CenterCrop(size), T.Grayscale(), T.ToTensor(), T.Normalize([0.5], [0.5])])
        loader = DataLoader(ImageFolder(root, steps), batch_size=batch, shuffle=True, drop_last=True, num_workers=2,
                            persistent_workers=True, pin_memory=device.type == "cuda")
        return _Endless(loader, device)

    return ours(kind, size, batch, root, seconds, device, overrides, data="mnist5k", batches=batches)


class _Endless:
    """A DataLoader as gan-cli's batch source: (images, labels) on the device, epoch after epoch."""

    def __init__(self, loader, device):
        self.loader, self.device, self.it = loader, device, iter(loader)

    def next(self):
        try:
            x, y = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            x, y = next(self.it)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def run_one(args):
    """One case in this process: images/s, and the peak memory that training added to the libraries'."""
    import torchvision.datasets  # noqa: F401  both sides' libraries are loaded before the baseline is read
    import gan_cli.train  # noqa: F401

    device = torch.device(args.device)
    base = 0.0 if device.type == "cuda" else rss_mib()
    kind, size, batch = args.one.split("-")
    size, batch = int(size), int(batch)
    fn = {"reference": reference, "gan-cli": ours, "imagefolder": imagefolder}[args.impl]
    extra = {"overrides": args.override} if args.impl != "reference" else {}
    extra.update({"data": args.data} if args.impl == "gan-cli" else {})
    steal, ticks = cpu_ticks()
    speed = fn(kind, size, batch, args.root, args.seconds, device, **extra)
    steal, ticks = (now - before for now, before in zip(cpu_ticks(), (steal, ticks)))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib() - base
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({"images_per_s": speed, "peak_mib": peak, "steal": steal / max(ticks, 1)}))


def quiet_run(measure_once, max_steal, retries):
    """measure_once(), again up to `retries` times while the host steals more than `max_steal` of the CPU
    time (a contended run says little about either side); the least contended run."""
    runs = [measure_once()]
    while runs[-1]["steal"] > max_steal and len(runs) <= retries:
        runs.append(measure_once())
    return min(runs, key=lambda r: r["steal"])


def measure(case, impl, root, seconds, device, overrides=(), nproc=0, data="mnist"):
    """One case in a fresh process (or, with nproc, in nproc processes under torchrun)."""
    launch = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc else [])
    cmd = [*launch, __file__, "--one", case, "--impl", impl, "--root", root, "--seconds", str(seconds),
           "--device", device, "--data", data, *[a for o in overrides for a in ("--override", o)]]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench: {case} {impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--seconds", type=float, default=20, help="timed seconds per case and implementation")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best is kept")
    p.add_argument("--max-steal", type=float, default=0.05,
                   help="a run whose CPU steal (virtual machines) is above this share is repeated, --retries times")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="outputs/bench/results.json")
    p.add_argument("--override", action="append", default=[], help="gan-train override for gan-cli's side")
    p.add_argument("--scaling", action="store_true",
                   help="instead: gan-cli under torchrun with 1 and 2 processes (gloo on CPU, nccl on CUDA)")
    p.add_argument("--folder", action="store_true",
                   help="instead: mnist5k's 4,500 training digits as a folder of PNGs, read by torchvision's "
                        "ImageFolder and by gan-cli's data=folder, against data=mnist5k in memory")
    p.add_argument("--one"), p.add_argument("--impl"), p.add_argument("--root"), p.add_argument("--data", default="mnist")
    args = p.parse_args()
    if args.one:
        return run_one(args)

    if args.scaling:
        return scaling(args)
    if args.folder:
        return folder(args)
    rows = []
    result = {"machine": _machine(args.device), "torch": torch.__version__, "seconds": args.seconds,
              "repeats": args.repeats, "max_steal": args.max_steal, "retries": args.retries,
              "overrides": args.override, "rows": rows}
    with tempfile.TemporaryDirectory() as root:
        write_mnist(root)
        for case in args.cases.split(","):
            runs = {"reference": [], "gan-cli": []}
            for _ in range(args.repeats):  # alternate, so a slow spell of a shared machine hits both
                for impl in runs:
                    runs[impl].append(quiet_run(lambda: measure(case, impl, root, args.seconds, args.device, args.override),
                                                args.max_steal, args.retries))
            ref, ours = (max(runs[i], key=lambda r: r["images_per_s"]) for i in ("reference", "gan-cli"))
            row = {"case": case, "reference_img_s": ref["images_per_s"], "gan_cli_img_s": ours["images_per_s"],
                   "speedup": ours["images_per_s"] / ref["images_per_s"],
                   "reference_peak_mib": ref["peak_mib"], "gan_cli_peak_mib": ours["peak_mib"],
                   "reference_steal": ref["steal"], "gan_cli_steal": ours["steal"]}
            rows.append(row)
            print(_row(row), flush=True)
            _write(args.out, result)  # after each case: a run stopped early keeps the rows it measured
    print(f"\n{_table(result)}\nwrote {args.out}")


def scaling(args):
    """images/s of gan-cli's trainer on 1 and 2 torchrun processes, batch_size per process."""
    rows = []
    result = {"machine": _machine(args.device), "torch": torch.__version__, "seconds": args.seconds, "rows": rows}
    with tempfile.TemporaryDirectory() as root:
        write_mnist(root)
        for case in args.cases.split(","):
            once = lambda n: measure(case, "gan-cli", root, args.seconds, args.device, args.override, nproc=n)
            speed = {n: max(quiet_run(lambda: once(n), args.max_steal, args.retries)["images_per_s"]
                            for _ in range(args.repeats)) for n in (1, 2)}
            rows.append({"case": case, "img_s_1": speed[1], "img_s_2": speed[2], "speedup": speed[2] / speed[1],
                         "efficiency": speed[2] / (2 * speed[1])})
            print(f"| {case} | {speed[1]:.0f} | {speed[2]:.0f} | {speed[2] / speed[1]:.2f}x | {rows[-1]['efficiency']:.0%} |",
                  flush=True)
            _write(args.out, result)
    print(f"wrote {args.out}")


def write_digit_folder(root):
    """mnist5k's 4,500 training digits as 28x28 greyscale PNGs, one subfolder per digit (ImageFolder's layout)."""
    from omegaconf import OmegaConf
    from PIL import Image

    from gan_cli import data

    images, labels = data.load_labeled(OmegaConf.create({"name": "mnist5k", "image_size": 28, "channels": 1}))
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        (Path(root) / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(Path(root) / str(label) / f"{i:05d}.png")


def folder(args):
    """images/s of the same digits read three ways: ImageFolder's per-epoch decode (the reference), gan-cli's
    prepared folder, and data=mnist5k in memory; each case's gan-cli side with its prepared copy made first."""
    rows = []
    result = {"machine": _machine(args.device), "torch": torch.__version__, "seconds": args.seconds, "rows": rows}
    with tempfile.TemporaryDirectory() as root:
        os.environ["GAN_CLI_CACHE"] = str(Path(root) / "cache")  # the prepared copy lives and dies with the folder
        digits = Path(root) / "digits"
        write_digit_folder(digits)
        for case in args.cases.split(","):
            sides = {"imagefolder": ("imagefolder", "mnist5k"), "folder": ("gan-cli", "folder"),
                     "mnist5k": ("gan-cli", "mnist5k")}
            runs = {name: [] for name in sides}
            for _ in range(args.repeats):
                for name, (impl, data) in sides.items():
                    once = lambda: measure(case, impl, str(digits), args.seconds, args.device, args.override, data=data)
                    runs[name].append(quiet_run(once, args.max_steal, args.retries)["images_per_s"])
            best = {name: max(speeds) for name, speeds in runs.items()}
            rows.append({"case": case, **{f"{name}_img_s": v for name, v in best.items()},
                         "folder_vs_memory": best["folder"] / best["mnist5k"]})
            print(f"| {case} | {best['imagefolder']:.0f} | {best['folder']:.0f} | {best['mnist5k']:.0f} "
                  f"| {rows[-1]['folder_vs_memory']:.2f}x |", flush=True)
            _write(args.out, result)
    print(f"wrote {args.out}")


def _write(path, result):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def _row(r):
    return (f"| {r['case']} | {r['reference_img_s']:.0f} | {r['gan_cli_img_s']:.0f} | {r['speedup']:.2f}x "
            f"| {r['reference_peak_mib']:.0f} | {r['gan_cli_peak_mib']:.0f} "
            f"| {r['reference_steal']:.0%} / {r['gan_cli_steal']:.0%} |")


def _table(result):
    head = ("| case (model-size-batch) | reference img/s | gan-cli img/s | speed-up | reference peak MiB "
            "| gan-cli peak MiB | CPU steal (reference / gan-cli) |\n|---|---|---|---|---|---|---|")
    return "\n".join([f"{result['machine']}, torch {result['torch']}", head, *map(_row, result["rows"])])


def _machine(device):
    """The device in words: a GPU's name, or the CPU's model, family, bf16/AMX units and cores."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    info = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = info.get("flags", "").split()
    units = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    units = units or (["AVX2"] if "avx2" in flags else [])
    cpu = info.get("model name", platform.processor())
    return (f"{cpu} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; {', '.join(units) or 'no AVX2'}), "
            f"{os.cpu_count()} cores, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
