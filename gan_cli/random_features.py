"""Random embeddings (Naeem et al. 2020): features of a fixed, seeded, randomly initialised CNN, for scoring
samples of a dataset that has no trained feature network offline (your own image folder).

Naeem et al. found that a randomly initialised network's features already separate real from generated
images and rank models, without ImageNet weights. The network here is small enough for the CPU: four stages
of a 3x3 convolution (stride 2) and a ReLU, He-initialised from seed 0 on the CPU, so the same torch gives
every machine the same network. The features are each stage's channel means and standard deviations
(2 x (32 + 64 + 128 + 256) = 960), statistics of shapes at four scales. Their numbers compare runs on one
dataset with each other; they are not FID and mean nothing across datasets.
"""

import torch
from torch import nn

WIDTHS = (32, 64, 128, 256)
SEED = 0


class RandomEmbedding(nn.Module):
    def __init__(self, channels, widths=WIDTHS, seed=SEED):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # the same weights every time; the caller's RNG does not move
            torch.manual_seed(seed)
            stages, c_in = [], channels
            for width in widths:
                conv = nn.Conv2d(c_in, width, 3, stride=2, padding=1)
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # keeps the activations' scale stage to stage
                nn.init.zeros_(conv.bias)
                stages.append(nn.Sequential(conv, nn.ReLU()))
                c_in = width
        self.stages = nn.ModuleList(stages).requires_grad_(False)
        self.num_features = 2 * sum(widths)

    @torch.no_grad()
    def embed(self, images, batch=500):
        """(N, num_features) features of images in [-1, 1], batch by batch, on this module's device."""
        device = next(self.parameters()).device
        out = []
        for chunk in images.split(batch):
            x, feats = chunk.to(device).float(), []
            for stage in self.stages:
                x = stage(x)
                feats += [x.mean((2, 3)), x.std((2, 3), correction=0)]
            out.append(torch.cat(feats, 1))
        return torch.cat(out)
