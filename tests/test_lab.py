"""gan-lab, the lab's autograder: the worked answer passes, and each broken student model fails with its own
message and a non-zero exit code."""

from pathlib import Path

import pytest

from conftest import run_cli
from gan_cli import lab

LAB = Path(__file__).resolve().parents[1] / "examples" / "lab"

G_HEAD = "from torch import nn\n\nclass Generator(nn.Module):\n"
D_HEAD = "from torch import nn\n\nclass Discriminator(nn.Module):\n"
BROKEN = {
    "d_ten_numbers": ("discriminator", D_HEAD + "    def __init__(self, latent_dim, channels, image_size):\n"
                      "        super().__init__()\n        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
                      "    def forward(self, x):\n        return self.net(x)\n",
                      "returns 10 numbers per image (output shape (64, 10)); it should return one"),
    "g_flat": ("generator", G_HEAD + "    def __init__(self, latent_dim, channels, image_size):\n"
               "        super().__init__()\n        self.net = nn.Sequential(nn.Linear(latent_dim, 784), nn.Tanh())\n"
               "    def forward(self, z):\n        return self.net(z)\n",
               "returns shape (64, 784) for 64 noise vectors; expected (64, 1, 28, 28)"),
    "g_no_tanh": ("generator", G_HEAD + "    def __init__(self, latent_dim, channels, image_size):\n"
                  "        super().__init__()\n        self.net = nn.Linear(latent_dim, 784)\n"
                  "    def forward(self, z):\n        return 5 * self.net(z).view(-1, 1, 28, 28)\n",
                  "imitate lie in [-1, 1]; end G with torch.tanh"),
    "g_wrong_arguments": ("generator", G_HEAD + "    def __init__(self, z_dim):\n        super().__init__()\n",
                          "its constructor takes (z_dim)"),
    "d_misnamed": ("discriminator", "class Critic:\n    pass\n",
                   "has no class Discriminator (it defines Critic); name your class Discriminator"),
    "d_nan": ("discriminator", D_HEAD + "    def __init__(self, latent_dim, channels, image_size):\n"
              "        super().__init__()\n        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))\n"
              "    def forward(self, x):\n        return self.net(x) * float('nan')\n",
              "returns inf or NaN scores"),
}


@pytest.mark.parametrize("exercise", ["generator", "discriminator"])
def test_the_worked_answer_passes(exercise, capsys):
    assert lab.main(["check", exercise, str(LAB / "solution" / f"{exercise}.py")]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "0 failed" in out


def test_the_skeletons_fail_until_written(capsys):
    assert lab.main(["check", "generator", str(LAB / "generator.py")]) == 1
    assert "NotImplementedError: Lab 1: write Generator.forward" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_fails_with_its_own_message(name, tmp_path, capsys):
    exercise, source, message = BROKEN[name]
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    assert lab.main(["check", exercise, str(path)]) == 1
    out = capsys.readouterr().out
    assert message in out and "FAIL" in out, out


def test_a_g_that_ends_in_a_sigmoid_passes_with_a_warning(tmp_path, capsys):
    path = tmp_path / "g.py"
    path.write_text(G_HEAD + "    def __init__(self, latent_dim, channels, image_size):\n        super().__init__()\n"
                    "        self.net = nn.Sequential(nn.Linear(latent_dim, 784), nn.Sigmoid())\n"
                    "    def forward(self, z):\n        return self.net(z).view(-1, 1, 28, 28)\n")
    assert lab.main(["check", "generator", str(path)]) == 0
    assert "WARN  G range" in capsys.readouterr().out


def test_gan_check_of_the_worked_answer_trains_and_passes(tmp_path):
    """The installed command, as a student runs it: both nets, then a short training on mnist5k."""
    proc = run_cli("gan-lab", "check", "gan", str(LAB / "solution"), "--steps", "150", "--run-dir", str(tmp_path / "run"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  GAN trains" in proc.stdout and "0 failed" in proc.stdout
    assert (tmp_path / "run" / "samples" / "step_0000150.png").is_file()


def test_gan_check_stops_before_training_when_a_net_fails(tmp_path, capsys):
    (tmp_path / "generator.py").write_text(BROKEN["g_flat"][1])
    (tmp_path / "discriminator.py").write_text((LAB / "solution" / "discriminator.py").read_text())
    assert lab.main(["check", "gan", str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 1
    assert "FAIL  GAN trains: fix the checks above first" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
