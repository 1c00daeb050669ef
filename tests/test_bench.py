"""benchmarks/bench.py: the timing that every torchrun rank agrees on."""

import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench  # noqa: E402


def test_timed_steps_are_counted_and_every_rank_takes_the_largest_count(monkeypatch):
    """Under torchrun the ranks agree on the number of timed steps before timing them (a rank that stopped early
    would leave the others waiting in DDP's collectives): here the other rank wants 40 steps."""
    from gan_cli import dist

    asked = []
    monkeypatch.setattr(dist, "max_over_ranks", lambda n: asked.append(n) or max(n, 40))
    steps = []
    speed = bench._time(steps.append, iter(range(1000)), 64, 0.0, torch.device("cpu"), warmup=3, probe=5)
    assert asked == [5] and len(steps) == 3 + 5 + 40 and speed > 0
