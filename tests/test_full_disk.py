"""A full disk where a run writes (a checkpoint, a sample grid, TensorBoard's events): one line naming the file and
the space left, exit code 4, the newest good checkpoint intact, no partial file. On a real small file system (a
tmpfs) where this process may mount one; elsewhere with the same failure injected at the write."""

import errno
import os
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from conftest import run_cli, tiny_overrides
from gan_cli import checkpoint, files
from gan_cli.errors import EnvironmentProblem
from gan_cli.train import train

def no_space():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def small_disk():
    """small_disk(folder, size) -> whether a tmpfs of `size` is now mounted at folder (root only); unmounted after."""
    mounted = []

    def mount(folder, size):
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return False
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True).returncode == 0
        if done:
            mounted.append(folder)
        return done

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_checkpoint_that_does_not_fit(make_cfg, tmp_path, monkeypatch, small_disk):
    """Two 171 KB checkpoints fit in 400 KB, the third does not: torch.save's own RuntimeError on a full disk."""
    run = tmp_path / "run"
    if not small_disk(run / "checkpoints", "400k"):
        saves, real_save = [], torch.save

        def save(obj, f):
            saves.append(1)
            if len(saves) == 3:
                f.write(b"half a checkpoint")
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
            real_save(obj, f)

        monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(EnvironmentProblem) as e:
        train(make_cfg("trainer.steps=6", "trainer.sample_every=0"), run)
    assert e.value.exit_code == 4 and f"could not write {run / 'checkpoints' / 'step_0000004.pt'}" in str(e.value)
    assert "free there" in str(e.value) and "the previous checkpoint is intact" in str(e.value)
    assert checkpoint.load(run)["step"] == 2 and leftovers(run / "checkpoints") == []


def test_a_sample_grid_that_does_not_fit(make_cfg, tmp_path, monkeypatch, small_disk):
    run = tmp_path / "run"
    if not small_disk(run / "samples", "16k"):
        real_save = Image.Image.save

        def save(self, fp, *args, **kwargs):
            if not isinstance(fp, (str, os.PathLike)):  # TensorBoard encodes its images in memory
                return real_save(self, fp, *args, **kwargs)
            with open(fp, "wb") as f:
                f.write(b"half a png")
            raise no_space()

        monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(EnvironmentProblem) as e:
        train(make_cfg(), run)
    assert e.value.exit_code == 4 and str(e.value).startswith(
        f"could not write {run / 'samples' / 'real.png'} (No space left on device; ")
    assert "free there); free space there, or choose another hydra.run.dir, and start again" in str(e.value)
    assert list((run / "samples").iterdir()) == []  # no real.png, whole or half, and no temporary file


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the writer thread's own
def test_tensorboard_events_that_do_not_fit_are_one_line_and_exit_4(mnist_root, tmp_path, monkeypatch, small_disk):
    """The events are written by TensorBoard's own thread, which hands its error to the next write."""
    run = tmp_path / "run"
    args = [*tiny_overrides(mnist_root), "trainer.steps=40", f"hydra.run.dir={run}"]
    if small_disk(run / "tb", "32k"):
        proc = run_cli("gan-train", *args)
        assert proc.returncode == 4, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"gan-train: error: could not write {run / 'tb'}"), proc.stderr
        assert "No space left on device" in lines[0]
        return
    from tensorboard.summary.writer import record_writer

    def write(self, data):
        raise no_space()

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    from hydra import compose, initialize_config_module

    with initialize_config_module("gan_cli.configs", version_base="1.3"), pytest.raises(EnvironmentProblem) as e:
        train(compose("train", overrides=args[:-1]), run)
    assert f"could not write {run / 'tb'}" in str(e.value) and "No space left on device" in str(e.value)


def test_a_line_that_does_not_fit_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    log = tmp_path / "metrics.jsonl"
    files.append_line(log, '{"step": 1}')
    real_open = open

    class Full:
        def __init__(self, *args, **kwargs):
            self.f = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:5])
            self.f.flush()
            raise no_space()

    monkeypatch.setattr("builtins.open", Full)
    with pytest.raises(OSError):
        files.append_line(log, '{"step": 2}')
    monkeypatch.undo()
    assert log.read_text() == '{"step": 1}\n'
