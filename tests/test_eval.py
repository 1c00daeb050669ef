"""gan-eval and in-training evaluation on data the tests write; the domain classifier trains in seconds."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import Fixed, run_cli, tiny_overrides
from gan_cli import classifier, data, evaluate, inception, metrics, toy
from gan_cli.board import events_folder
from gan_cli.errors import EnvironmentProblem
from gan_cli.sample import sample
from gan_cli.train import train


@pytest.fixture(autouse=True)
def small_classifier(monkeypatch):
    """50 batches are enough to exercise the real code."""
    monkeypatch.setattr(classifier, "TRAIN_SAMPLES", 6400)


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One classifier cache for the session, so the classifier is trained once."""
    return str(tmp_path_factory.getbasetemp() / "classifier-cache")


def eval_cfg(ckpt, **kw):
    return OmegaConf.create({"ckpt": str(ckpt), "n": 64, "seed": 0, "device": "cpu", "data_root": None,
                             "inception": False, "inception_weights": None, "ema": True, "generator": None,
                             "trust_code": False, **kw})


def test_gan_eval_scores_a_checkpoint_deterministically_and_writes_metrics_json(make_cfg, mnist_root, tmp_path, cache):
    train(make_cfg("trainer.steps=2"), tmp_path / "run", tiny_overrides(mnist_root))
    cfg = eval_cfg(tmp_path / "run", cache_dir=cache)
    first = evaluate.evaluate(cfg)
    assert list(Path(cache).glob("classifier-mnist-1x28-*.pt"))  # trained once and cached
    second = evaluate.evaluate(cfg)
    assert first == second  # same seed, same numbers
    for key in ("fd_classifier", "kid_classifier", "precision", "recall", "inception_score", "class_entropy",
                "classes_covered", "classifier_accuracy"):
        assert key in first
    saved = json.loads((tmp_path / "run" / "checkpoints" / "metrics.json").read_text())
    assert saved["last.pt"]["step"] == 2 and saved["last.pt"]["fd_classifier"] == first["fd_classifier"]


def test_real_test_images_score_better_than_noise_and_than_mode_collapse(mnist_root, tmp_path, cache):
    cfg_data = OmegaConf.create({"name": "mnist", "root": str(mnist_root), "path": None, "image_size": 28,
                                 "channels": 1, "download": False})
    ev = evaluate.Evaluator(cfg_data, torch.device("cpu"), n=32, seed=0, cache_dir=cache)
    real = data.uint8_to_signed(data.load_labeled(cfg_data, train=False)[0])

    as_real = ev(Fixed(real), 4)
    noise = ev(Fixed(torch.rand_like(real) * 2 - 1), 4)
    collapsed = ev(Fixed(real[:1].repeat(32, 1, 1, 1)), 4)
    assert as_real["fd_classifier"] == pytest.approx(0.0, abs=1e-3) and as_real["precision"] == 1.0
    assert noise["fd_classifier"] > as_real["fd_classifier"] + 1 and collapsed["fd_classifier"] > 1
    assert collapsed["recall"] < as_real["recall"] and collapsed["classes_covered"] == 1
    assert collapsed["inception_score"] == pytest.approx(1.0, abs=1e-3)
    assert as_real["inception_score"] > 1.5


def test_eval_every_logs_metrics_to_tensorboard_and_jsonl_and_resume_drops_redone_lines(make_cfg, mnist_root,
                                                                                        tmp_path, cache):
    over = ["trainer.eval_every=2", "eval.n=32", f"eval.cache_dir={cache}"]
    train(make_cfg(*over), tmp_path, [*tiny_overrides(mnist_root), *over])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4] and "inception_score" in lines[0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(events_folder(tmp_path)))
    ea.Reload()
    assert [e.step for e in ea.Scalars("Metrics/fd_classifier")] == [2, 4]
    train(make_cfg(f"resume={tmp_path / 'checkpoints' / 'step_0000002.pt'}", "trainer.steps=4"), tmp_path, [])
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_toy_ring8_trains_and_scores_modes(make_cfg, tmp_path):
    cfg = make_cfg("+experiment=ring8", "data=ring8", "trainer.steps=4", "trainer.eval_every=2", "trainer.sample_every=2",
                   "eval.n=200", model="mlp")
    train(cfg, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert set(lines[-1]) >= {"modes_covered", "high_quality", "kl_to_uniform"}
    assert (tmp_path / "samples" / "step_0000004.png").is_file()
    # gan-sample of points: a scatter over the real data, and the coordinates
    out = sample(OmegaConf.create({"ckpt": str(tmp_path), "n": 50, "seed": 0, "format": "npz", "out": str(tmp_path / "g"),
                                   "device": "cpu", "nrow": 8, "ema": True, "generator": None, "trust_code": False, "label": None,
                                   "mode": "sample", "seeds": None, "steps": 8, "truncation": None}))
    assert (out / "scatter.png").is_file() and np.load(out / "points.npz")["points"].shape == (50, 2)


def test_mode_metrics_on_known_samples():
    centres, std = toy.modes("ring8")
    perfect = centres.repeat(100, 1)
    assert metrics.mode_metrics(perfect, centres, std) == {"modes_covered": 8, "high_quality": 1.0,
                                                           "kl_to_uniform": pytest.approx(0.0, abs=1e-12)}
    one_mode = centres[:1].repeat(800, 1)
    result = metrics.mode_metrics(one_mode, centres, std)
    assert result["modes_covered"] == 1 and result["kl_to_uniform"] == pytest.approx(torch.log(torch.tensor(8.0)).item())
    off = torch.zeros(100, 2)  # the centre of the ring is no mode
    assert metrics.mode_metrics(off, centres, std)["high_quality"] == 0.0


def test_grid25_has_25_modes_in_range():
    centres, std = toy.modes("grid25")
    assert centres.shape == (25, 2) and centres.abs().max() <= 0.8 and std == pytest.approx(0.01)


def test_inception_offline_is_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(EnvironmentProblem, match="inception_weights=.*does not exist"):
        inception.weights_file(tmp_path / "missing.pth")

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(EnvironmentProblem, match="could not be downloaded .*eval.inception_weights=<file>"):
        inception.weights_file()


def test_gan_eval_cli_on_a_checkpoint(make_cfg, mnist_root, tmp_path, cache):
    train(make_cfg("trainer.steps=2"), tmp_path / "run", tiny_overrides(mnist_root))
    evaluate.evaluate(eval_cfg(tmp_path / "run", cache_dir=cache))  # caches the small classifier
    proc = run_cli("gan-eval", f"ckpt={tmp_path / 'run'}", "n=32", f"cache_dir={cache}", check=True)
    assert "inception_score" in proc.stdout and (tmp_path / "run" / "checkpoints" / "metrics.json").is_file()


def test_ema_samples_and_resumes_exactly(make_cfg, mnist_root, tmp_path):
    train(make_cfg("trainer.ema_decay=0.9", "trainer.steps=4"), tmp_path / "a")
    raw = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    assert raw["G_ema"]["n_averaged"] == 4
    assert not torch.equal(raw["G_ema"]["module.net.0.weight"], raw["G"]["net.0.weight"])
    train(make_cfg("trainer.ema_decay=0.9", "trainer.steps=2"), tmp_path / "b", tiny_overrides(mnist_root) +
          ["trainer.ema_decay=0.9"])
    train(make_cfg(f"resume={tmp_path / 'b'}", "trainer.steps=4"), tmp_path / "b", ["trainer.steps=4"])
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(raw["G_ema"][k], resumed["G_ema"][k]) for k in raw["G_ema"])


def test_conditional_accuracy_and_intra_class_fd_tell_a_g_that_draws_the_asked_class(mnist_root, cache):
    cfg_data = OmegaConf.create({"name": "mnist", "root": str(mnist_root), "path": None, "image_size": 28,
                                 "channels": 1, "download": False})
    ev = evaluate.Evaluator(cfg_data, torch.device("cpu"), n=40, seed=0, cache_dir=cache)
    images, labels = data.load_labeled(cfg_data, train=True)
    images = data.uint8_to_signed(images)

    class ByClass(torch.nn.Module):  # draws a real training image of class y + shift for label y
        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def forward(self, z, y):
            wanted = (y + self.shift) % 10
            return torch.stack([images[labels == c][i % int((labels == c).sum())] for i, c in enumerate(wanted.tolist())])

    right, wrong = ev(ByClass(0), 4, num_classes=10), ev(ByClass(1), 4, num_classes=10)
    assert right["conditional_accuracy"] >= 0.9 and wrong["conditional_accuracy"] <= 0.1
    assert len(right["fd_per_class"]) == 10
    assert right["fd_per_class"][0] is None  # one test image of class 0: no covariance to compare with
    assert right["intra_fd"] < wrong["intra_fd"]
