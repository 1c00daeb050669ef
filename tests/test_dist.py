"""torchrun on the CPU (gloo): DDP training, one run folder, rank 0 writes, resume across process counts."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_cli import checkpoint, dist
from gan_cli.board import events_folder
from gan_cli.train import train

from conftest import BIN, tiny_overrides, wait_for_steps

HERE = Path(__file__).parent
# MLP without dropout or batch norm: N processes must compute exactly what one process does with the global batch.
EXACT = ["model.dropout=0", "trainer.precision=32", "trainer.log_every=2", "trainer.sample_every=0", "trainer.ckpt_every=0"]


def torchrun(nproc, *args, cwd=None, **popen):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, cwd=cwd, **popen)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def job(nproc, run, out, *overrides):
    out.mkdir(exist_ok=True)
    torchrun(nproc, HERE / "dist_job.py", run, out, *overrides)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(nproc)]


@pytest.fixture(scope="module")
def two_process_run(mnist_root, tmp_path_factory):
    """6 steps of the tiny MLP on 2 processes, batch 16 each: (run folder, each rank's final weights)."""
    root = tmp_path_factory.mktemp("two")
    overrides = [*tiny_overrides(mnist_root, "mlp"), *EXACT, "trainer.steps=6", "device=cpu"]
    return root / "run", job(2, root / "run", root / "weights", *overrides), overrides


def test_two_processes_match_one_with_the_global_batch(two_process_run, make_cfg, tmp_path):
    run, ranks, _ = two_process_run
    one = train(make_cfg(*EXACT, "trainer.steps=6", "device=cpu", "batch_size=32", model="mlp"), tmp_path)
    for net, plain in (("G", one.G), ("D", one.D)):
        for key, value in plain.state_dict().items():
            assert torch.equal(ranks[0][net][key], ranks[1][net][key]), f"{net}.{key} differs between the ranks"
            assert torch.allclose(ranks[0][net][key], value, atol=1e-5), f"{net}.{key}: 2 processes != 1 process"
    # rank 0 alone wrote the run folder: one checkpoint set, one TensorBoard writer
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    writers = {p.name.split(".")[-2] for p in events_folder(run).glob("events.out.tfevents.*")}
    assert len(writers) == 1, writers  # event files of one process (its pid is in their names)
    assert checkpoint.load(run)["step"] == 6


def test_resume_two_processes_in_one_and_one_in_two(two_process_run, make_cfg, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_process_run[0], run)
    overrides = [*two_process_run[2], "trainer.steps=8"]
    one = train(make_cfg(*EXACT, "trainer.steps=8", "device=cpu", f"resume={run}", model="mlp"), run, overrides)
    assert one.step == 8 and checkpoint.load(run)["step"] == 8
    two = job(2, run, tmp_path / "w", *two_process_run[2], "trainer.steps=10", f"resume={run}")
    assert two[0]["step"] == two[1]["step"] == 10 and checkpoint.load(run)["step"] == 10


def test_sigterm_to_the_torchrun_group_saves_once_in_one_folder_and_exits(mnist_root, tmp_path):
    """Rank 1 starts 1.5 s late, so the ranks' default (timestamped) folders would differ: there is one."""
    late = tmp_path / "late_start.py"
    late.write_text("import os, sys, time\nif os.environ['RANK'] == '1':\n    time.sleep(1.5)\n"
                    "from gan_cli.train import main\nsys.argv[0] = 'gan-train'\nmain()\n")
    proc = torchrun(2, late, *tiny_overrides(mnist_root, "mlp"), "trainer.steps=100000", "trainer.ckpt_every=0",
                    "trainer.progress=bar",
                    cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for_steps(proc, 100000)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler does: the agent and both workers get it
    rest = proc.communicate(timeout=60)[1].decode()
    assert time.monotonic() - sent < 30, rest  # inside torchrun's grace period, so no SIGKILL was needed
    runs = list(tmp_path.glob("outputs/*/*"))
    assert len(runs) == 1, runs
    run = runs[0]
    step = checkpoint.load(run)["step"]
    assert 0 < step < 100000 and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert rest.count(f"stopped by SIGTERM after step {step}; saved") == 2, rest  # both ranks, the same step
    assert (run / "train.log").is_file() and (run / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow  # about 15-25 s: it launches its own processes; run by make test-all
def test_a_rank_that_dies_makes_the_others_exit_with_a_clear_message(mnist_root, tmp_path):
    dying = tmp_path / "dying_rank.py"
    dying.write_text("import os, sys\nfrom gan_cli import loop\nreal, calls = loop.train_step, []\n"
                     "def iteration(*args):\n    calls.append(1)\n"
                     "    if os.environ['RANK'] == '1' and len(calls) == 5:\n        os._exit(3)\n"
                     "    return real(*args)\nloop.train_step = iteration\n"
                     "from gan_cli.train import main\nsys.argv[0] = 'gan-train'\nmain()\n")
    proc = torchrun(2, dying, *tiny_overrides(mnist_root, "mlp"), "trainer.steps=100000", f"hydra.run.dir={tmp_path / 'run'}",
                    stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode != 0
    assert "gan-train: error: rank 0: lost contact with the other ranks" in err, err[-3000:]


def test_only_transport_errors_count_as_a_lost_rank():
    assert dist.is_lost_peer(torch.distributed.DistError("anything"))
    assert dist.is_lost_peer(RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1"))
    assert not dist.is_lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x10 and 784x256)"))


def test_close_leaves_no_reference_to_the_group():
    """A group that outlives destroy_process_group is torn down at exit, where gloo can abort the process
    (SIGABRT after a finished run): close drops the cached handle as well as the group."""
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    group = dist._cpu_group()
    assert dist._CPU_GROUP == [group]
    dist.close()
    assert not torch.distributed.is_initialized() and dist._CPU_GROUP == []


def test_rank_0_dying_before_the_run_folder_is_shared_is_one_line_and_exit_4(monkeypatch, capsys):
    """The run folder is agreed inside Hydra's set-up (a config resolver), before report_errors is in place."""
    from gan_cli import run_folder

    def fails_with(message):
        def from_main(value):
            raise RuntimeError(message)
        return from_main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "from_main", fails_with("[gloo/transport/tcp/pair.cc:534] Connection closed by peer"))
    with pytest.raises(SystemExit) as exit_info:
        run_folder.run_dir_for(None, "outputs/x")
    assert exit_info.value.code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gan-train: error: rank 0: lost contact with the other ranks"), err
    monkeypatch.setattr(dist, "from_main", fails_with("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):  # anything else is not dressed up as a lost rank
        run_folder.run_dir_for(None, "outputs/x")


@pytest.mark.slow  # about 15-25 s: it launches its own processes; run by make test-all
def test_a_submitit_local_multirun_of_two_configs_writes_two_result_folders(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([str(BIN / "gan-train"), "-m", "hydra/launcher=submitit_local", *tiny_overrides(mnist_root, "mlp"),
                           "seed=0,1", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent.parent.name for p in sweep.glob("*/checkpoints/last.pt"))
    assert len(runs) == 2 and runs[0].startswith("0_") and runs[1].startswith("1_") and "seed=1" in runs[1]


def test_sync_batch_norm_on_the_cpu_is_one_clear_error(monkeypatch):
    from gan_cli import dist
    from gan_cli.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="trainer.sync_batch_norm needs CUDA"):
        dist.wrap(torch.nn.BatchNorm2d(3), torch.device("cpu"), sync_batch_norm=True)


@pytest.mark.slow  # about 15 s: it launches its own processes; run by make test-all
def test_two_processes_on_a_folder_prepare_it_once_and_match_one_process(tmp_path):
    """Both ranks map the one prepared file (the second waits while the first prepares it) and, mirrored
    batches included, compute what one process does with the global batch."""
    from hydra import compose, initialize_config_module

    from test_folder import overrides, write_flat

    write_flat(tmp_path / "pics", 64)
    common = [o for o in overrides(tmp_path / "pics", tmp_path / "cache", "data.mirror=true", "data.test_fraction=0",
                                   "trainer.steps=4", model="mlp") if not o.startswith("batch_size")]
    common += [o for o in EXACT if not o.startswith(("trainer.log_every", "trainer.sample_every", "trainer.ckpt_every"))]
    ranks = job(2, tmp_path / "run", tmp_path / "weights", *common, "batch_size=8")
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        one = train(compose("train", overrides=[*common, "batch_size=16"]), tmp_path / "one")
    for key, value in one.G.state_dict().items():
        assert torch.equal(ranks[0]["G"][key], ranks[1]["G"][key])
        assert torch.allclose(ranks[0]["G"][key], value, atol=1e-5), f"G.{key}: 2 processes != 1 process"
    assert len(list((tmp_path / "cache" / "folders").glob("*.u8"))) == 1


@pytest.mark.slow  # about 15 s: it launches its own processes; run by make test-all
@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
def test_two_processes_augment_what_one_process_does(mnist_root, make_cfg, tmp_path, augment):
    """Each rank draws the augmentation of the global batch and takes its slice; ADA's r_t is summed over ranks."""
    aug = [f"augment={augment}", *(["augment.p=0.5", "augment.interval=1", "augment.kimg=0.1"] if augment == "ada" else [])]
    overrides = [*tiny_overrides(mnist_root, "mlp"), *EXACT, "trainer.steps=4", "device=cpu", *aug]
    ranks = job(2, tmp_path / "run", tmp_path / "weights", *overrides)
    one = train(make_cfg(*EXACT, "trainer.steps=4", "device=cpu", "batch_size=32", *aug, model="mlp"), tmp_path / "one")
    for key, value in one.G.state_dict().items():
        assert torch.allclose(ranks[0]["G"][key], value, atol=1e-5), f"G.{key}: 2 processes != 1 process"
