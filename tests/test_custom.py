"""model=custom: the user's classes train, resume and sample; a sigmoid D; the start-up contract check; consent
before importing a class path that a checkpoint names."""

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import run_cli, tiny_overrides
from gan_cli import checkpoint, contract, losses
from gan_cli.errors import ConfigError
from gan_cli.loop import TrainState, d_step, g_step
from gan_cli.sample import generator_from
from gan_cli.train import train

SOLUTION = Path(__file__).resolve().parents[1] / "examples" / "lab" / "solution"
TARGETS = ["model=custom", "model.generator._target_=generator.Generator",
           "model.discriminator._target_=discriminator.Discriminator"]
NAMED = TARGETS[1:]  # the classes named on the command line (conftest's tiny_overrides has model=custom)


@pytest.fixture
def lab_folder(tmp_path, monkeypatch):
    """The worked answer's generator.py and discriminator.py in the current folder, as a student runs them."""
    for name in ("generator.py", "discriminator.py"):
        shutil.copy(SOLUTION / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def first_run(make_cfg, mnist_root, run, *extra):
    """A 4-step run of the worked answer's classes, with the command line a user would have typed."""
    return train(make_cfg(*NAMED, *extra, model="custom"), run, [*tiny_overrides(mnist_root, "custom"), *NAMED, *extra])


def test_custom_classes_train_resume_and_sample(make_cfg, mnist_root, lab_folder, caplog):
    caplog.set_level("INFO", logger="gan_cli")
    run = lab_folder / "run"
    s = first_run(make_cfg, mnist_root, run, "trainer.ema_decay=0.9")
    assert s.step == 4 and s.d_probability and "D ends in a sigmoid" in caplog.text
    ckpt = checkpoint.load(run)
    assert ckpt["config"]["model"]["generator"]["_target_"] == "generator.Generator"
    # resume names the classes again (consent), and continues
    s = train(make_cfg(f"resume={run}", "trainer.steps=6", *NAMED, model="custom"), run, ["trainer.steps=6", *NAMED])
    assert s.step == 6
    G, latent_dim = generator_from(checkpoint.load(run), torch.device("cpu"), named_generator="generator.Generator")
    assert G(torch.randn(3, latent_dim)).shape == (3, 1, 28, 28)


def test_a_checkpoint_naming_a_class_imports_nothing_without_consent(make_cfg, mnist_root, lab_folder, tmp_path):
    """A checkpoint can name any class path, os.system included: without the user's consent on the command line
    nothing is imported; the message names the module and how to allow it."""
    (lab_folder / "evil.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nclass Generator: pass\n")
    run = lab_folder / "run"
    first_run(make_cfg, mnist_root, run)
    ckpt = checkpoint.load(run)
    for path in ("evil.Generator", "os.system"):
        ckpt["config"]["model"]["generator"]["_target_"] = path
        with pytest.raises(ConfigError, match=f"importing it runs the code of module '{path.rsplit('.', 1)[0]}'. "
                                              f"Allow it with generator={path}"):
            generator_from(ckpt, torch.device("cpu"))
        with pytest.raises(ConfigError, match="Allow it with generator="):  # naming another path is no consent
            generator_from(ckpt, torch.device("cpu"), named_generator="generator.Generator")
    assert not (tmp_path / "imported").exists()
    with pytest.raises(ConfigError, match=r"Allow it with model=custom model.generator._target_=generator.Generator "
                                          r"model.discriminator._target_=discriminator.Discriminator \(or trust_code"):
        train(make_cfg(f"resume={run}", "trainer.steps=6", model="custom"), run, ["trainer.steps=6"])


def test_resume_with_trust_code(make_cfg, mnist_root, lab_folder):
    run = lab_folder / "run"
    first_run(make_cfg, mnist_root, run)
    s = train(make_cfg(f"resume={run}", "trainer.steps=6", "trust_code=true", model="custom"), run,
              ["trainer.steps=6", "trust_code=true"])
    assert s.step == 6
    assert "trust_code=true" not in checkpoint.load(run)["overrides"]  # consent is never saved for the next resume


def test_gan_sample_refuses_then_accepts_a_custom_checkpoint(make_cfg, mnist_root, lab_folder, tmp_path):
    run = lab_folder / "run"
    first_run(make_cfg, mnist_root, run)
    proc = run_cli("gan-sample", f"ckpt={run}", cwd=lab_folder)
    assert proc.returncode == 2 and "Allow it with generator=generator.Generator" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("gan-sample", f"ckpt={run}", "generator=generator.Generator", f"out={tmp_path / 'g'}", cwd=lab_folder)
    assert proc.returncode == 0 and (tmp_path / "g" / "grid.png").is_file(), proc.stderr


class Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x)


def test_a_sigmoid_d_and_its_logit_twin_give_the_same_losses_and_gradients():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))
    twin = Logits()
    sigmoid_d = nn.Sequential(Logits(), nn.Sigmoid())
    sigmoid_d[0].load_state_dict(twin.state_dict())
    real, z = torch.rand(8, 1, 4, 4) * 2 - 1, torch.randn(8, 4)
    results = []
    for D, probability in ((twin, False), (sigmoid_d, True)):
        s = TrainState(G, D, torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.0),
                       d_probability=probability)
        grads = {}
        for p in D.parameters():
            p.register_hook(lambda g, p=p: grads.setdefault(id(p), g.clone()))
        loss_d, _ = d_step(s, losses.LOSSES["nonsaturating"], real, z)
        results.append((loss_d, [grads[id(p)] for p in D.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads_a, grads_b))
    assert torch.isfinite(losses.logits_from_probabilities(torch.tensor([0.0, 1.0]))).all()  # clamped


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 784), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class Scores(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, k))

    def forward(self, x):
        return self.net(x)


class SigmoidG(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def forward(self, z):
        return self.net(z)


def test_the_contract_check_names_what_is_wrong():
    z, real = torch.randn(16, 8), torch.rand(16, 1, 28, 28) * 2 - 1
    good_g = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    with pytest.raises(ConfigError, match=r"Flat returns shape \(16, 784\) for 16 noise vectors; expected \(16, 1, 28, "
                                          r"28\).*reshape it with .view\(-1, 1, 28, 28\)"):
        contract.check(Flat(), Scores(1), z, real)
    with pytest.raises(ConfigError, match=r"Scores returns 10 numbers per image \(output shape \(16, 10\)\); it should "
                                          r"return one"):
        contract.check(good_g, Scores(10), z, real)
    assert contract.check(good_g, Scores(1), z, real) is False  # logits
    assert contract.check(good_g, nn.Sequential(Scores(1), nn.Sigmoid()), z, real) is True
    found = contract.generator_findings(SigmoidG(), z, (1, 28, 28))
    warning = [f for f in found if not f.ok]
    assert len(warning) == 1 and not warning[0].fault and "nn.Tanh()" in warning[0].message


def test_an_unimportable_class_or_a_constructor_mismatch_is_one_line_and_exit_2(mnist_root, lab_folder):
    from conftest import tiny_overrides

    base = [o for o in tiny_overrides(mnist_root, "mlp") if not o.startswith("model")]
    proc = run_cli("gan-train", *base, "model=custom", "model.generator._target_=generator.Generatr",
                   "model.discriminator._target_=discriminator.Discriminator", f"hydra.run.dir={lab_folder / 'r1'}",
                   cwd=lab_folder)
    assert proc.returncode == 2 and "model.generator._target_=generator.Generatr cannot be imported" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_cli("gan-train", *base, *TARGETS, "+model.generator.width=3", cwd=lab_folder)
    assert proc.returncode == 2 and "unexpected keyword argument 'width'" in proc.stderr, proc.stderr
    assert not (lab_folder / "r1").exists() and not (lab_folder / "outputs").exists()  # a failed start leaves nothing
