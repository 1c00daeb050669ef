"""Sample-quality metrics on feature sets; the formulas are kept apart from how features are made.

Frechet distance, KID and the inception score come from torchmetrics, fed features directly; precision and
recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020) and class coverage are written
here, since torchmetrics has none of them.
"""

import math
import warnings

import torch
from torch import nn

# torchmetrics warns that KID and IS keep all features in memory: by design here (10,000 x 128 floats).
warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")


class _Given(nn.Module):
    """An identity 'feature extractor', so torchmetrics computes on features we already have."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def frechet_distance(real, fake):
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2), in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # seconds to import: only when scoring

    fid = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return fid.compute().item()


def kernel_distance(real, fake, subsets=50, subset_size=1000):
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018): (mean, std) over subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    mean, std = kid.compute()
    return mean.item(), std.item()


def inception_score(logits, splits=10):
    """exp E_x KL(p(y|x) || p(y)) with p from the classifier's logits: (mean, std) over splits."""
    from torchmetrics.image.inception import InceptionScore

    score = InceptionScore(feature=_Given(logits.shape[1]), splits=splits)
    score.update(logits)
    mean, std = score.compute()
    return mean.item(), std.item() if splits > 1 else 0.0  # one split has no spread (torchmetrics: nan)


def _knn_radii(x, k):
    """Distance of each point to its k-th nearest neighbour in its own set (+1: itself, at distance 0); in a
    set of k points or fewer, to its farthest."""
    k = min(k, len(x) - 1)
    return torch.cat([torch.cdist(chunk, x).kthvalue(k + 1, dim=1).values for chunk in x.split(1024)])


def _hits(points, ref, ref_radii):
    """Chunks of (rows of points, len(ref)) booleans: whether each point lies in each reference point's ball."""
    for chunk in points.split(1024):
        yield torch.cdist(chunk, ref) <= ref_radii[None, :]


def precision_recall(real, fake, k=3):
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest neighbour.
    Precision: share of fake points inside the real manifold; recall: share of real points inside the fake one.
    """

    def inside(points, ref):
        return torch.cat([hits.any(dim=1) for hits in _hits(points, ref, _knn_radii(ref, k))]).double().mean().item()

    real, fake = real.double(), fake.double()
    return inside(fake, real), inside(real, fake)


def density_coverage(real, fake, k=5):
    """Density and coverage (Naeem et al. 2020), on balls around the real points only, so outliers among the real
    ones matter less than in precision and recall. Density: how many real balls hold each fake point, over k
    (about 1 when fakes are spread like reals; may exceed 1). Coverage: share of real balls holding a fake point."""
    real, fake = real.double(), fake.double()
    held, covered = 0, torch.zeros(len(real), dtype=torch.bool)
    for hits in _hits(fake, real, _knn_radii(real, k)):
        held += hits.sum().item()
        covered |= hits.any(dim=0)
    return held / (k * len(fake)), covered.double().mean().item()


def class_coverage(logits, min_share=0.1):
    """Histogram of predicted classes, its entropy (nats; log(10) = 2.303 is uniform over 10), and the
    number of classes covered: those predicted for at least min_share of a uniform share of samples."""
    n_classes = logits.shape[1]
    hist = torch.bincount(logits.argmax(1).cpu(), minlength=n_classes).double()
    p = hist / hist.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    covered = int((p >= min_share / n_classes).sum())
    return p.tolist(), entropy, covered


def mode_metrics(points, centres, std, min_share=0.1):
    """2-D toy data (Metz et al. 2017; Srivastava et al. 2017). A sample is high quality within 3 std of
    its nearest mode; a mode is covered when it holds at least min_share of its fair share of samples;
    KL is from the histogram of high-quality samples over modes to the uniform one (log K if none)."""
    d = torch.cdist(points.double(), centres.double())
    nearest, dist = d.argmin(1), d.min(1).values
    good = dist <= 3 * std
    k = len(centres)
    hist = torch.bincount(nearest[good], minlength=k).double()
    p = hist / hist.sum() if hist.sum() > 0 else None
    kl = (p[p > 0] * (p[p > 0] * k).log()).sum().item() if p is not None else math.log(k)
    return {"modes_covered": int((hist >= min_share * len(points) / k).sum()),
            "high_quality": good.double().mean().item(), "kl_to_uniform": kl}
