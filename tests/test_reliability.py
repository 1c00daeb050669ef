"""Nothing lost, nothing unsafe: exact resume, atomic saves, preemption, non-finite steps, untrusted files."""

import errno
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import BIN, run_cli, tiny_overrides, wait_for_steps
from gan_cli import checkpoint, data, device
from gan_cli.board import events_folder
from gan_cli.errors import CheckpointError, EnvironmentProblem, NonFiniteError
from gan_cli.sample import sample
from gan_cli.train import train


def scalars(run_dir):
    ea = EventAccumulator(str(events_folder(run_dir)), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]
            if not tag.startswith(("Speed/", "final/"))}


def assert_same_tree(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def trained_state(run_dir):
    raw = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return {k: raw[k] for k in ("step", "G", "D", "opt_g", "opt_d", "stats")}


# 96 images / batch 16 = 6 batches an epoch: a split at step 6 is an epoch boundary, at step 4 mid-epoch.
@pytest.mark.parametrize("split,total", [(6, 10), (4, 8)], ids=["epoch-boundary", "mid-epoch"])
def test_resume_in_a_new_process_is_bit_identical(make_cfg, mnist_root, tmp_path, split, total):
    common = [*tiny_overrides(mnist_root), "trainer.log_every=3", "trainer.ckpt_every=0", "model.d_features=4"]
    train(make_cfg("trainer.log_every=3", "trainer.ckpt_every=0", "model.d_features=4", f"trainer.steps={total}"),
          tmp_path / "straight")
    half = tmp_path / "split"
    train(make_cfg("trainer.log_every=3", "trainer.ckpt_every=0", "model.d_features=4", f"trainer.steps={split}"),
          half, common)
    run_cli("gan-train", f"resume={half}", f"trainer.steps={total}", check=True)  # a new process
    assert_same_tree(trained_state(tmp_path / "straight"), trained_state(half))
    assert scalars(tmp_path / "straight") == scalars(half)


def test_negative_control_resume_without_the_rng_state_differs(make_cfg, mnist_root, tmp_path, monkeypatch):
    train(make_cfg("trainer.steps=8", "trainer.ckpt_every=0"), tmp_path / "straight")
    train(make_cfg("trainer.steps=4", "trainer.ckpt_every=0"), tmp_path / "split", tiny_overrides(mnist_root))
    monkeypatch.setattr(device, "set_rng_state", lambda state: None)
    train(make_cfg(f"resume={tmp_path / 'split'}", "trainer.steps=8"), tmp_path / "split", ["trainer.steps=8"])
    straight, split = trained_state(tmp_path / "straight"), trained_state(tmp_path / "split")
    assert split["step"] == 8
    assert not torch.equal(straight["G"]["net.0.weight"], split["G"]["net.0.weight"])


def test_older_or_foreign_checkpoint_formats_are_refused(tmp_path):
    checkpoint.save(tmp_path / "old.pt", {"step": 1})
    raw = torch.load(tmp_path / "old.pt", weights_only=True)
    torch.save({**raw, "version": 0}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format version 0; this gan-cli reads version 1"):
        checkpoint.load(tmp_path / "old.pt")
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "lightning.pt")
    with pytest.raises(CheckpointError, match="not a gan-cli checkpoint"):
        checkpoint.load(tmp_path / "lightning.pt")


# --- atomic saves -------------------------------------------------------------------------------------------

KILL_DURING_SAVE = """
import os, signal, sys, torch
from gan_cli import checkpoint
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die mid-save: bytes written, not yet renamed
checkpoint.save(sys.argv[1], {"step": 99, "w": torch.zeros(100000)})
"""


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(make_cfg, mnist_root, tmp_path):
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    last = tmp_path / "checkpoints" / "last.pt"
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(last)])
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "checkpoints" / ".last.pt.tmp").exists()  # the half-done save
    assert checkpoint.load(last)["step"] == 4
    s = train(make_cfg("resume=auto", "trainer.steps=6"), tmp_path, ["trainer.steps=6"])
    assert s.step == 6 and not list((tmp_path / "checkpoints").glob(".*.tmp"))


def test_an_exception_inside_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / "last.pt", {"step": 1})

    def broken(obj, f):
        f.write(b"half a checkpoint")
        raise RuntimeError("boom")

    monkeypatch.setattr(checkpoint.torch, "save", broken)
    with pytest.raises(RuntimeError, match="boom"):
        checkpoint.save(tmp_path / "last.pt", {"step": 2})
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def full_disk(monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", no_space)


def test_a_full_disk_keeps_the_previous_checkpoints_and_says_so(tmp_path, monkeypatch):
    for step in (1, 2):
        checkpoint.write(tmp_path, {"step": step}, step, keep_last=1, periodic=True)
    full_disk(monkeypatch)
    with pytest.raises(EnvironmentProblem, match="No space left on device.*previous checkpoint is intact"):
        checkpoint.write(tmp_path, {"step": 3}, 3, keep_last=1, periodic=True)
    monkeypatch.undo()
    # retention deletes old files only after the new one is safely written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000002.pt"]
    assert checkpoint.load(tmp_path)["step"] == 2


def test_a_full_disk_during_training_stops_with_exit_code_4(make_cfg, tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(EnvironmentProblem) as e:
        train(make_cfg(), tmp_path)
    assert e.value.exit_code == 4 and not list((tmp_path / "checkpoints").iterdir())


# --- preemption -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_step_saves_and_exits(make_cfg, mnist_root, tmp_path, sig, code):
    run = tmp_path / "run"
    cmd = [str(BIN / "gan-train"), *tiny_overrides(mnist_root), "trainer.steps=100000", "trainer.ckpt_every=0",
           "trainer.progress=bar",
           f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    wait_for_steps(proc, 100000)
    sent = time.monotonic()
    proc.send_signal(sig)
    rest = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == code and time.monotonic() - sent < 30, rest
    step = checkpoint.load(run)["step"]
    assert f"stopped by {signal.Signals(sig).name} after step {step}; saved {run}/checkpoints/last.pt" in rest
    assert f"continue with resume={run}" in rest
    s = train(make_cfg(f"resume={run}", f"trainer.steps={step + 2}"), run, [f"trainer.steps={step + 2}"])
    assert s.step == step + 2


def test_resume_auto_skips_a_corrupt_newest_checkpoint_with_a_warning(make_cfg, mnist_root, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gan_cli")
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    for name in ("last.pt", "step_0000004.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"garbage")
    s = train(make_cfg("resume=auto", "trainer.steps=5"), tmp_path, ["trainer.steps=5"])
    assert s.step == 5
    assert "skipping" in caplog.text and "last.pt" in caplog.text and "resuming" in caplog.text
    assert "step_0000002.pt at step 2" in caplog.text


def test_resume_auto_on_a_fresh_folder_starts_from_scratch(make_cfg, tmp_path):
    assert train(make_cfg("resume=auto"), tmp_path).step == 4


# --- non-finite steps -----------------------------------------------------------------------------------------

def poison_batch(monkeypatch, at_call):
    real_next, calls = data.TensorBatches.next, []

    def next_batch(self):
        calls.append(1)
        x, y = real_next(self)
        return (x * float("nan") if len(calls) == at_call else x), y

    monkeypatch.setattr(data.TensorBatches, "next", next_batch)


def test_a_nan_loss_stops_before_the_optimizer_step_naming_step_and_quantity(make_cfg, tmp_path, monkeypatch):
    poison_batch(monkeypatch, at_call=3)
    with pytest.raises(NonFiniteError, match="step 3: Loss/D is not finite; stopped before the optimizer step") as e:
        train(make_cfg(), tmp_path)
    assert e.value.exit_code == 5
    saved = checkpoint.load(tmp_path)
    assert saved["step"] == 2 and all(t.isfinite().all() for t in saved["G"].values() if t.is_floating_point())
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.pt", "step_0000002.pt"]


def test_opt_in_skips_count_and_continue(make_cfg, tmp_path, monkeypatch, caplog):
    poison_batch(monkeypatch, at_call=3)
    s = train(make_cfg("trainer.max_nonfinite_skips=1"), tmp_path)
    assert s.step == 4 and s.nonfinite_skips == 1 and "the rest of this step skipped (1 of at most 1)" in caplog.text
    assert checkpoint.load(tmp_path)["stats"]["nonfinite_skips"] == 1


def test_a_nonfinite_gradient_is_named(monkeypatch):
    from gan_cli.loop import NonFiniteStep, _check_finite

    with pytest.raises(NonFiniteStep, match="the gradient of G"):
        _check_finite(torch.tensor(1.0), torch.tensor(float("inf")), "G")


# --- untrusted and bad checkpoints ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory, mnist_root):
    run = tmp_path_factory.mktemp("good")
    run_cli("gan-train", *tiny_overrides(mnist_root), "trainer.steps=2", f"hydra.run.dir={run}", check=True)
    return run / "checkpoints" / "last.pt"


def sample_cfg(ckpt, out):
    return OmegaConf.create({"ckpt": str(ckpt), "n": 4, "seed": 0, "format": "grid", "out": str(out),
                             "device": "cpu", "nrow": 8, "ema": True, "generator": None, "trust_code": False, "label": None,
                             "mode": "sample", "seeds": None, "steps": 8, "truncation": None})


def test_every_load_passes_weights_only_true(good_ckpt, make_cfg, tmp_path, monkeypatch):
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    sample(sample_cfg(good_ckpt, tmp_path / "s"))
    run = good_ckpt.parent.parent
    train(make_cfg(f"resume={run}", "trainer.steps=3", f"hydra.run.dir={run}"), tmp_path / "r", [])
    assert len(calls) >= 2 and all(kw.get("weights_only") is True for kw in calls)


def test_a_malicious_pickle_never_runs_even_when_torch_is_told_to_allow_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    subprocess.run([sys.executable, "-c", f"""
import os, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"format": "gan-cli-checkpoint", "G": Evil()}}, "{evil}")
"""], check=True)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    proc = subprocess.run([str(BIN / "gan-sample"), f"ckpt={evil}", f"out={tmp_path}"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "refused without running them" in proc.stderr
    assert not marker.exists()


def resave(ckpt_path, dest, edit):
    raw = torch.load(ckpt_path, weights_only=True)
    raw.pop("sha256")
    edit(raw)
    checkpoint.save(dest, {k: v for k, v in raw.items() if k not in ("format", "version")})


def test_nothing_is_instantiated_from_a_stored_config(good_ckpt, tmp_path, monkeypatch):
    import hydra.utils

    monkeypatch.setattr(hydra.utils, "instantiate", lambda *a, **k: pytest.fail("instantiate called"))
    resave(good_ckpt, tmp_path / "t.pt", lambda raw: raw["config"]["model"].update(
        name="os.system", _target_="os.system"))
    with pytest.raises(Exception, match="unknown model 'os.system'"):
        sample(sample_cfg(tmp_path / "t.pt", tmp_path / "s"))


def test_a_different_architecture_names_the_mismatched_keys(good_ckpt, tmp_path):
    resave(good_ckpt, tmp_path / "t.pt", lambda raw: raw["config"]["model"].update(g_features=16))
    with pytest.raises(CheckpointError, match=r"G does not match this architecture \(shape differs: net.0.weight"):
        sample(sample_cfg(tmp_path / "t.pt", tmp_path / "s"))


def corrupt(good, path, how):
    blob = good.read_bytes()
    if how == "empty":
        blob = b""
    elif how == "truncated":
        blob = blob[: len(blob) // 2]
    elif how == "flipped":
        weights = torch.load(good, weights_only=True)["G"]["net.0.weight"]
        i = blob.find(bytes(weights.untyped_storage())[:16])  # as stored (channels_last is not logical order)
        assert i > 0
        blob = blob[:i] + bytes([blob[i] ^ 0x40]) + blob[i + 1:]
    elif how == "yaml":
        blob = b"model:\n  name: dcgan\n"
    elif how == "png":
        blob = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 100
    elif how == "state_dict":
        torch.save(torch.load(good, weights_only=True)["G"], path)
        return path
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("how,match", [
    ("empty", "not a readable gan-cli checkpoint .not a complete PyTorch file"),
    ("truncated", "not a readable gan-cli checkpoint .not a complete PyTorch file"),
    ("flipped", "corrupt .its SHA-256 does not match"),
    ("yaml", "not a readable gan-cli checkpoint"),
    ("png", "not a readable gan-cli checkpoint"),
    ("state_dict", "not a gan-cli checkpoint .no 'gan-cli-checkpoint' marker; a bare state_dict"),
])
def test_bad_checkpoint_files_are_one_clear_error(good_ckpt, tmp_path, how, match):
    path = corrupt(good_ckpt, tmp_path / "bad.pt", how)
    with pytest.raises(CheckpointError, match=match) as e:
        sample(sample_cfg(path, tmp_path / "s"))
    assert e.value.exit_code == 3 and "\n" not in str(e.value)


def test_a_cuda_saved_checkpoint_loads_on_a_cpu_only_machine(good_ckpt, tmp_path, monkeypatch):
    # Save with every storage tagged "cuda:0", as torch.save writes on a GPU, then load here.
    raw = torch.load(good_ckpt, weights_only=True)
    registry = torch.serialization._package_registry
    monkeypatch.setattr(torch.serialization, "_package_registry", list(registry))
    torch.serialization.register_package(-1, lambda storage: "cuda:0", lambda storage, location: None)
    torch.save(raw, tmp_path / "cuda.pt")
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "cuda.pt", weights_only=True)  # proof the file really asks for CUDA
    out = sample(sample_cfg(tmp_path / "cuda.pt", tmp_path / "s"))
    assert (out / "grid.png").is_file()


# --- bad config and environment -------------------------------------------------------------------------------

def test_an_unwritable_run_folder_is_one_line_and_exit_4(mnist_root, tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"gan-train: error: cannot write the run folder {tmp_path / 'file' / 'run'} (Not a directory); "
        "choose another hydra.run.dir="]


def test_resume_of_a_used_folder_needs_resume(good_ckpt, mnist_root):
    proc = run_cli("gan-train", *tiny_overrides(mnist_root), f"hydra.run.dir={good_ckpt.parent.parent}")
    assert proc.returncode == 2 and "already holds a run's checkpoints; continue it with resume=" in proc.stderr
