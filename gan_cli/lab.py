"""gan-lab: the autograder of the GAN lab (docs/lab.md).

    gan-lab check generator PATH.py        Lab 1: the class Generator in PATH.py
    gan-lab check discriminator PATH.py    Lab 2: the class Discriminator in PATH.py
    gan-lab check gan PATH                 Lab 3: both (a folder with generator.py and discriminator.py, or one
                                           file with both classes), then a short training on mnist5k

Each check prints PASS, WARN or FAIL with what to do; the exit code is 0 only when nothing failed.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

LATENT_DIM, SHAPE, BATCH = 100, (1, 28, 28), 64  # mnist5k, as Lab 3 trains on it
STEPS = 300


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def add(self, check, ok, message, fault=True):
        mark = "PASS" if ok else ("FAIL" if fault else "WARN")
        print(f"  {mark}  {check}: {message}", flush=True)
        self.passed += ok
        self.failed += not ok and fault

    def findings(self, found):
        for f in found:
            self.add(f.check, f.ok, f.message, f.fault)
        return all(f.ok or not f.fault for f in found)


def load_class(path, name):
    """(the class `name` in the file at `path`, its import path): the file is imported under a name of its own,
    so a student's generator.py never clashes with another module of that name."""
    module_name = f"gan_lab_{Path(path).stem}_{name.lower()}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, name):
        classes = [k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module_name]
        raise LookupError(f"{path} has no class {name} (it defines {', '.join(classes) or 'no class'}); "
                          f"name your class {name}")
    return getattr(module, name), f"{module_name}.{name}"


def build(report, path, name):
    """The student's net, constructed as gan-train constructs it; None after a FAIL."""
    from gan_cli.errors import ConfigError
    from gan_cli.models import custom

    try:
        _, target = load_class(path, name)
    except Exception as e:  # a syntax error, a missing import or class: all the student's to fix
        report.add(f"{name[0]} imports", False, f"{path}: {type(e).__name__}: {e}")
        return None, None
    report.add(f"{name[0]} imports", True, f"{name} found in {path}")
    try:
        net = custom.construct({"_target_": target}, f"model.{name.lower()}",
                               {"latent_dim": LATENT_DIM, "channels": SHAPE[0], "image_size": SHAPE[-1]})
    except ConfigError as e:
        report.add(f"{name[0]} builds", False, str(e).replace(target, name))
        return None, None
    report.add(f"{name[0]} builds", True, f"{name}(latent_dim={LATENT_DIM}, channels={SHAPE[0]}, image_size={SHAPE[-1]})")
    return net, target


def check_generator(report, path):
    import torch

    from gan_cli import contract

    G, target = build(report, path, "Generator")
    if G is None:
        return None
    z = torch.randn(BATCH, LATENT_DIM, generator=torch.Generator().manual_seed(0))
    ok = report.findings(contract.generator_findings(G, z, SHAPE)) and gradient_reaches(report, G, z, "G")
    return target if ok else None


def check_discriminator(report, path):
    import torch

    from gan_cli import contract

    D, target = build(report, path, "Discriminator")
    if D is None:
        return None
    x = torch.rand(BATCH, *SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    found, _ = contract.discriminator_findings(D, x)
    ok = report.findings(found) and gradient_reaches(report, D, x, "D")
    return target if ok else None


def gradient_reaches(report, net, x, name):
    """Whether backpropagating from the net's output reaches its parameters: what training needs of it."""
    net(x).sum().backward()
    learns = any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    report.add(f"{name} learns", learns, "a gradient reaches its parameters" if learns else
               "no gradient reaches its parameters: build it from nn layers and do not detach its output")
    return learns


def check_gan(report, path, steps, run_dir):
    path = Path(path)
    files = (path / "generator.py", path / "discriminator.py") if path.is_dir() else (path, path)
    g_target, d_target = check_generator(report, files[0]), check_discriminator(report, files[1])
    if not (g_target and d_target):
        report.add("GAN trains", False, "fix the checks above first", fault=True)
        return
    train_briefly(report, g_target, d_target, steps, run_dir)


def train_briefly(report, g_target, d_target, steps, run_dir):
    """`steps` steps of Algorithm 1 on mnist5k with the student's nets, through gan-train itself."""
    import torch
    from hydra import compose, initialize_config_module

    from gan_cli import board, data
    from gan_cli.errors import GanError
    from gan_cli.train import train  # importing it registers the schemas and resolvers, as gan-train does

    overrides = ["model=custom", f"model.generator._target_={g_target}", f"model.discriminator._target_={d_target}",
                 "data=mnist5k", f"latent_dim={LATENT_DIM}", f"batch_size={BATCH}", f"trainer.steps={steps}",
                 "trainer.log_every=25", f"trainer.sample_every={max(1, steps // 3)}", "trainer.ckpt_every=0"]
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
        real = data.uint8_to_signed(data.load(cfg.data))
        z = torch.randn(BATCH, LATENT_DIM, generator=torch.Generator().manual_seed(1))
        try:
            s = train(cfg, run_dir, overrides)
        except GanError as e:
            report.add("GAN trains", False, str(e))
            return
    report.add("GAN trains", True, f"{steps} steps of Algorithm 1 on mnist5k, losses finite")
    fake = board.generate(s.G, z)
    before = _distance(board.generate(_untrained(g_target), z), real)
    after = _distance(fake, real)
    moved = after < 0.9 * before
    report.add("G improves", moved,
               f"G's average image moved toward the data's ({before:.2f} -> {after:.2f})" if moved else
               f"G's average image did not move toward the data's ({before:.2f} -> {after:.2f}); look at the grids and "
               f"at D/fake in TensorBoard: a D that rejects every fake from the start leaves G no signal")
    spread = fake.std(0).mean().item()
    report.add("G varies", spread > 0.02, f"its samples differ from one another (spread {spread:.2f})" if spread > 0.02
               else f"all its samples look alike (spread {spread:.3f}): mode collapse; train longer or weaken D")
    print(f"  grids: {Path(run_dir) / 'samples'}   TensorBoard: tensorboard --logdir {Path(run_dir) / 'tb'}\n"
          f"  {steps} steps only show that training works; digits take a few thousand (docs/lab.md, step 3)")


def _untrained(target):
    """A freshly built copy of the student's G (seed 0), for the before/after comparison."""
    import torch

    from gan_cli.models import custom

    torch.manual_seed(0)
    return custom.construct({"_target_": target}, "model.generator",
                            {"latent_dim": LATENT_DIM, "channels": SHAPE[0], "image_size": SHAPE[-1]})


def _distance(fake, real):
    """How far G's average image is from the data's, per pixel (root mean square)."""
    return (fake.mean(0) - real.mean(0)).pow(2).mean().sqrt().item()


def main(argv=None):
    p = argparse.ArgumentParser(prog="gan-lab", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a lab exercise")
    check.add_argument("exercise", choices=["generator", "discriminator", "gan"])
    check.add_argument("path", help="your .py file (for gan: a folder with generator.py and discriminator.py, or one file)")
    check.add_argument("--steps", type=int, default=STEPS, help=f"training steps for `gan` (default {STEPS})")
    check.add_argument("--run-dir", default=None, help="where `gan` trains (default outputs/lab/<time>)")
    args = p.parse_args(argv)
    if not Path(args.path).exists():
        print(f"gan-lab: error: {args.path} does not exist; pass the path of your .py file", file=sys.stderr)
        return 2
    report = Report()
    print(f"gan-lab: checking {args.exercise} in {args.path}", flush=True)
    if args.exercise == "generator":
        check_generator(report, args.path)
    elif args.exercise == "discriminator":
        check_discriminator(report, args.path)
    else:
        from datetime import datetime

        run_dir = Path(args.run_dir or f"outputs/lab/{datetime.now():%Y-%m-%d_%H-%M-%S}")
        check_gan(report, args.path, args.steps, run_dir)
    print(f"gan-lab: {report.passed} checks passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


def entry():
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
