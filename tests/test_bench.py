"""benchmarks/bench.py's tutorial-style reference: torch's own layer classes, computing what gan-cli's nets do."""

import copy
import sys
from pathlib import Path

import pytest
import torch

from gan_cli import models

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench  # noqa: E402


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_reference_nets_have_torchs_own_layers_and_compute_the_same(kind):
    torch.manual_seed(0)
    G, D = models.build(bench._model_cfg(kind), 100, 1, 32)
    G_ref, D_ref = (bench.tutorial_modules(copy.deepcopy(net)) for net in (G, D))
    for net in (G_ref, D_ref):
        leaves = [m for m in net.modules() if not list(m.children())]
        assert leaves and all(type(m).__module__.startswith("torch.nn.modules") for m in leaves)
    z = torch.randn(4, 100)
    for a, b in ((G, G_ref), (D, D_ref)):
        a.eval(), b.eval()  # dropout off, batch norm on its running statistics: deterministic
    assert torch.allclose(G(z), G_ref(z), atol=1e-5)
    assert torch.allclose(D(G(z)), D_ref(G(z)), atol=1e-5)


def test_timed_steps_are_counted_and_every_rank_takes_the_largest_count(monkeypatch):
    """Under torchrun the ranks agree on the number of timed steps before timing them (a rank that stopped early
    would leave the others waiting in DDP's collectives): here the other rank wants 40 steps."""
    from gan_cli import dist

    asked = []
    monkeypatch.setattr(dist, "max_over_ranks", lambda n: asked.append(n) or max(n, 40))
    steps = []
    speed = bench._time(steps.append, iter(range(1000)), 64, 0.0, torch.device("cpu"), warmup=3, probe=5)
    assert asked == [5] and len(steps) == 3 + 5 + 40 and speed > 0
