"""The installed entry points, run as a user runs them: outputs, exit codes, one-line errors."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import run_cli, tiny_overrides
from gan_cli.board import events_folder
from gan_cli.sample import sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_root):
    """A run as a user starts it, its console in a pipe (not a terminal): console.txt beside the run holds it."""
    run = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), f"hydra.run.dir={run}", check=True)
    (run.parent / "console.txt").write_text(proc.stdout + proc.stderr)
    return run


def test_gan_train_writes_a_run_folder(trained):
    assert (trained / "checkpoints" / "last.pt").is_file()
    assert (trained / ".hydra" / "config.yaml").is_file() and (trained / "train.log").is_file()
    assert list(events_folder(trained).glob("events.out.tfevents.*"))


def test_gan_sample_writes_pngs_of_the_trained_size(trained, tmp_path):
    run_cli("gan-sample", f"ckpt={trained}", "n=10", "format=png", f"out={tmp_path}", check=True)
    pngs = sorted(tmp_path.glob("0*.png"))
    assert len(pngs) == 10 and Image.open(pngs[0]).size == (28, 28)
    assert Image.open(tmp_path / "grid.png").size == (8 * 30 + 2, 2 * 30 + 2)  # 8 per row, 2 px padding


def test_gan_sample_same_seed_same_images_npz(trained, tmp_path):
    arrays = []
    for seed, out in ((3, "a"), (3, "b"), (4, "c")):
        cfg = OmegaConf.create({"ckpt": f"{trained}/checkpoints/last.pt", "n": 5, "seed": seed, "format": "npz",
                                "out": str(tmp_path / out), "device": "cpu", "nrow": 8, "ema": True,
                                "generator": None, "trust_code": False, "label": None, "mode": "sample", "seeds": None,
                                "steps": 8, "truncation": None})
        arrays.append(np.load(sample(cfg) / "images.npz")["images"])
    assert arrays[0].shape == (5, 28, 28, 1) and arrays[0].dtype == np.uint8
    assert np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[0], arrays[2])


def test_resume_through_the_cli_continues_in_the_same_folder(trained, mnist_root, tmp_path):
    run = tmp_path / "run"
    run_cli("gan-train", *tiny_overrides(mnist_root), f"hydra.run.dir={run}", check=True)
    original = (run / ".hydra" / "overrides.yaml").read_text()
    proc = run_cli("gan-train", f"resume={run}", "trainer.steps=6", cwd=tmp_path, check=True)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 6
    assert (run / ".hydra" / "overrides.yaml").read_text() == original  # the original record is kept
    assert not (tmp_path / "outputs").exists(), proc.stderr


def one_line_error(proc, code, match):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("override,code,match", [
    ("batch_size=0", 2, "batch_size must be a positive integer"),
    ("+foo=1", 2, "unknown config key(s) foo"),
    ("data.root=/nonexistent", 4, "MNIST is not in /nonexistent and data.download=false"),
])
def test_bad_training_input_is_one_line_and_an_exit_code(mnist_root, tmp_path, override, code, match):
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), override, cwd=tmp_path)
    one_line_error(proc, code, match)
    assert list(tmp_path.iterdir()) == []  # no outputs/<date>/<time>/, no outputs/<date>/, no outputs/


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(mnist_root, tmp_path):
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), "device=cuda", f"hydra.run.dir={tmp_path}")
    one_line_error(proc, 4, "CUDA is not available")


def test_a_failed_start_leaves_no_run_folder_but_keeps_an_existing_one(mnist_root, tmp_path):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "notes.txt").write_text("mine")
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), "data.root=/nonexistent", cwd=tmp_path)
    one_line_error(proc, 4, "MNIST is not in /nonexistent and data.download=false")
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["notes.txt"]  # its date folder went with the run's
    new = tmp_path / "a" / "b" / "new_run"
    run_cli("gan-train", *tiny_overrides(mnist_root), "data.root=/nonexistent", f"hydra.run.dir={new}")
    assert not (tmp_path / "a").exists()
    old = tmp_path / "old_run"
    old.mkdir()
    (old / "notes.txt").write_text("mine")
    run_cli("gan-train", *tiny_overrides(mnist_root), "data.root=/nonexistent", f"hydra.run.dir={old}")
    assert (old / "notes.txt").read_text() == "mine"


def test_a_console_that_is_not_a_terminal_gets_a_plain_line_per_log_window_and_no_bar(trained):
    console = (trained.parent / "console.txt").read_text()
    assert "\r" not in console and "it/s" not in console  # no tqdm bar
    lines = [line for line in (trained / "train.log").read_text().splitlines() if "] - train " in line]
    assert len(lines) == 2 and all(line.split("] - ")[1] in console for line in lines)  # steps 2 and 4, both places
    assert re.search(r"train 2/4 \| D \d+\.\d{3} G \d+\.\d{3} \| D\(x\) \d\.\d{3} D\(G\(z\)\) \d\.\d{3} \| "
                     r"[\d,]+ img/s \| 0:00:\d\d elapsed, 0:00:\d\d left$", lines[0]), lines[0]


def test_gan_sample_progress_animates_the_runs_grids_in_step_order(trained, tmp_path, capsys):
    from gan_cli.errors import CheckpointError
    from test_latent import sample_cfg

    sample(sample_cfg(trained, tmp_path, mode="progress"))
    gif, last = Image.open(tmp_path / "progress.gif"), Image.open(tmp_path / "progress.png")
    grid = np.asarray(Image.open(trained / "samples" / "step_0000004.png").convert("RGB"))
    assert gif.n_frames == 2 and np.array_equal(np.asarray(last)[18:], grid)  # the last grid, under its step's strip
    assert "2 grids, steps 2 to 4" in capsys.readouterr().out
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no sample grids in"):
        sample(sample_cfg(tmp_path / "empty_run", tmp_path / "x", mode="progress"))


def test_ctrl_c_during_start_up_is_one_line_exit_130_and_leaves_no_folder(mnist_root, tmp_path, monkeypatch, capsys):
    """gan-train's own entry point, in this process, stopped where the data is loaded."""
    import logging
    import threading

    from hydra.core.global_hydra import GlobalHydra

    from gan_cli import data, train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "batches", interrupted)
    for module, name in ((threading, "excepthook"), (logging, "raiseExceptions")):  # what the entry point sets
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["gan-train", *tiny_overrides(mnist_root)])
    handlers = logging.getLogger().handlers[:]
    try:
        with pytest.raises(SystemExit) as e:
            train.main()
    finally:
        GlobalHydra.instance().clear()
        for handler in logging.getLogger().handlers[:]:  # Hydra's, for the run's train.log
            if handler not in handlers:
                logging.getLogger().removeHandler(handler)
                handler.close()
    assert e.value.code == 130 and capsys.readouterr().err.strip().splitlines()[-1] == "gan-train: stopped by Ctrl-C"
    assert list(tmp_path.iterdir()) == []


def test_the_start_up_block_names_the_run_folder(trained):
    log = (trained / "train.log").read_text()
    assert f"run folder: {trained.resolve()}" in log
    assert "G: DCGANGenerator" in log and "data: mnist, 96 training samples" in log and "k = 1" in log


def test_help_lists_the_groups_presets_and_examples_not_the_schemas():
    from importlib.resources import files

    out = run_cli("gan-train", "--help", check=True).stdout
    assert "schema" not in out and "+experiment=recipe" in out and "Examples:" in out
    for group in ("model", "loss", "optimizer", "data"):
        shipped = {p.name.removesuffix(".yaml") for p in files("gan_cli.configs").joinpath(group).iterdir()
                   if p.name.endswith(".yaml")}
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{group}="))
        assert set(line.split()[0].removeprefix(f"{group}=").split("|")) == shipped, line


def test_typos_fail_with_hydras_message_and_exit_2(mnist_root, tmp_path):
    proc = run_cli("gan-train", "model=mlpp", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "Could not find 'model/mlpp'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("gan-train", "batch_size=abc", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "could not be converted to Integer" in proc.stderr


def test_gan_sample_bad_input(tmp_path):
    (tmp_path / "cfg.yaml").write_text("model: mlp\n")
    one_line_error(run_cli("gan-sample", f"ckpt={tmp_path / 'cfg.yaml'}"), 3, "not a readable gan-cli checkpoint")
    one_line_error(run_cli("gan-sample", f"ckpt={tmp_path}", "n=0"), 2, "n must be a positive integer")


def test_multirun_gives_one_folder_per_job(mnist_root, tmp_path):
    run_cli("gan-train", "-m", *tiny_overrides(mnist_root), "trainer.steps=2", "loss=saturating,nonsaturating",
            "seed=0,1", f"hydra.sweep.dir={tmp_path}", check=True)
    runs = sorted(p.parent.parent for p in tmp_path.glob("*/checkpoints/last.pt"))
    assert len(runs) == 4
    combos = {(c["loss"]["name"], c["seed"]) for c in (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["config"]
                                                       for r in runs)}
    assert combos == {("saturating", 0), ("saturating", 1), ("nonsaturating", 0), ("nonsaturating", 1)}


def test_installed_wheel_works_from_outside_the_checkout(mnist_root, tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", ROOT], check=True)
    wheel = next((tmp_path / "dist").glob("gan_cli-*.whl"))
    assert "gan_cli/configs/train.yaml" in zipfile.ZipFile(wheel).namelist()
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    where = subprocess.run([sys.executable, "-c", "import gan_cli; print(gan_cli.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "site"))  # the wheel's copy, not the checkout
    proc = subprocess.run([tmp_path / "site" / "bin" / "gan-train", *tiny_overrides(mnist_root), "trainer.steps=2"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert list(elsewhere.glob("outputs/*/*/checkpoints/last.pt"))


def test_jobs_of_a_local_parallel_sweep_take_one_thread_each():
    """submitit_local starts every job at once on this machine's cores: each takes its share, not all of them."""
    from gan_cli.train import _threads_for

    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert _threads_for({"_target_": local, "cpus_per_task": None}) == 1
    assert _threads_for({"_target_": local, "cpus_per_task": 4}) == 4
    assert _threads_for({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) is None
    assert _threads_for({"_target_": local.replace("Local", "Slurm")}) is None  # a Slurm job has its own cores
