"""gan-eval, and the evaluators that gan-train's trainer.eval_every uses: G's samples against the test split,
in a domain classifier's features (the built-in image sets), a random network's (an image folder) or as
points (the toy data)."""

import json
import os
from pathlib import Path

import torch

from gan_cli import classifier, cli, data, inception, latent, metrics, random_features, schema, toy
from gan_cli.board import generate
from gan_cli.errors import ConfigError, EnvironmentProblem
from gan_cli.sample import load_generator


def samples(G, n, seed, latent_dim, num_classes, device):
    """(n images of G, their labels or None) from a fixed seed; a conditional G is asked for every class equally
    often."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    y = latent.classes_in_turn(n, num_classes) if num_classes else None
    return generate(G, z.to(device), y), y


def distances(real_feats, feats):
    """Frechet distance, KID (mean, std), precision and recall between two feature sets (on the CPU). KID draws
    random subsets from torch's RNG: the caller seeds it."""
    m = min(len(real_feats), len(feats))  # precision/recall compare sets of equal size
    kid, kid_std = metrics.kernel_distance(real_feats, feats)
    precision, recall = metrics.precision_recall(real_feats[:m], feats[:m])
    return {"fd": metrics.frechet_distance(real_feats, feats), "kid": kid, "kid_std": kid_std,
            "precision": precision, "recall": recall}


class Evaluator:
    """Scores G in the domain classifier's feature space; the real side is computed once."""

    def __init__(self, cfg_data, dev, n, seed, cache_dir, inception_net=None):
        self.net, self.accuracy = classifier.load_or_train(cfg_data, dev, cache_dir)
        real, self.real_labels = data.load_labeled(cfg_data, train=False)
        self.real = data.uint8_to_signed(real)
        self.real_feats, self.real_logits = self.net.embed(self.real)
        self.n, self.seed, self.device, self.inception = n, seed, dev, inception_net

    @torch.no_grad()
    def __call__(self, G, latent_dim, num_classes=None):
        """The metrics of G's samples; a conditional G (num_classes) is asked for every class equally often,
        and also scored on whether its images show the class asked for."""
        fake, y = samples(G, self.n, self.seed, latent_dim, num_classes, self.device)
        feats, logits = self.net.embed(fake)
        feats, logits, real_feats = feats.cpu(), logits.cpu(), self.real_feats.cpu()
        with torch.random.fork_rng(devices=[]):  # KID and IS draw random subsets; training's RNG stays put
            torch.manual_seed(self.seed)
            d = distances(real_feats, feats)
            score, score_std = metrics.inception_score(logits, splits=max(1, min(10, len(logits) // 1000)))
        hist, entropy, covered = metrics.class_coverage(logits)
        result = {
            "fd_classifier": d["fd"], "kid_classifier": d["kid"], "kid_classifier_std": d["kid_std"],
            "precision": d["precision"], "recall": d["recall"],
            "inception_score": score, "inception_score_std": score_std,
            "class_entropy": entropy, "classes_covered": covered, "class_histogram": hist,
        }
        if num_classes:
            result.update(self._conditional(feats, logits, y, num_classes))
        if self.inception is not None:
            result.update(inception_metrics(self.inception, self.real, fake, self.seed, self.device))
        return result

    def _conditional(self, feats, logits, y, num_classes):
        """conditional_accuracy: the share of images the classifier puts in the class they were drawn for.
        intra_fd: the mean over classes of the FD between one class's samples and that class's real test images
        (null for a class with fewer than two of either: a covariance needs two)."""
        real_feats, real_y = self.real_feats.cpu(), self.real_labels.cpu()
        per_class = [metrics.frechet_distance(real_feats[real_y == c], feats[y == c])
                     if min((real_y == c).sum(), (y == c).sum()) >= 2 else None for c in range(num_classes)]
        known = [fd for fd in per_class if fd is not None]
        return {"conditional_accuracy": (logits.argmax(1) == y).double().mean().item(),
                "intra_fd": sum(known) / len(known) if known else None, "fd_per_class": per_class}


class FolderEvaluator:
    """Scores G on an image folder's held-out images in the features of a fixed random network
    (random_features.py), whose names say so: fd_random_embed is no FID. The real side is computed once."""

    def __init__(self, cfg_data, dev, n, seed, inception_net=None, record=None):
        real, _ = data.load_labeled(cfg_data, train=False, record=record)
        if len(real) < 2:
            raise ConfigError(f"the folder holds {len(real)} held-out image(s) to score against; raise "
                              f"data.test_fraction (now {cfg_data.test_fraction}) or add images")
        self.real = data.uint8_to_signed(real)
        self.net = random_features.RandomEmbedding(real.shape[1]).to(dev)
        self.real_feats = self.net.embed(self.real).cpu()
        self.n, self.seed, self.device, self.inception = n, seed, dev, inception_net

    @torch.no_grad()
    def __call__(self, G, latent_dim, num_classes=None):
        fake, _ = samples(G, self.n, self.seed, latent_dim, num_classes, self.device)
        feats = self.net.embed(fake).cpu()
        with torch.random.fork_rng(devices=[]):  # KID draws random subsets; training's RNG stays put
            torch.manual_seed(self.seed)
            d = distances(self.real_feats, feats)
        m = min(len(self.real_feats), len(feats))
        density, coverage = metrics.density_coverage(self.real_feats[:m], feats[:m])
        result = {"fd_random_embed": d["fd"], "kid_random_embed": d["kid"], "kid_random_embed_std": d["kid_std"],
                  "precision_random_embed": d["precision"], "recall_random_embed": d["recall"],
                  "density_random_embed": density, "coverage_random_embed": coverage}
        if self.inception is not None:
            result.update(inception_metrics(self.inception, self.real, fake, self.seed, self.device))
        return result


def inception_metrics(net, real, fake, seed, device):
    """Standard FID and KID (ImageNet Inception features, torchmetrics) of fake against real images in [-1, 1]."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    net = net.to(device)
    fid = FrechetInceptionDistance(feature=net).to(device)
    kid = KernelInceptionDistance(feature=net, subsets=50, subset_size=min(1000, len(real), len(fake))).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(200):
            x = inception.to_uint8_rgb(chunk).to(device)
            fid.update(x, real=is_real)
            kid.update(x, real=is_real)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid_inception": fid.compute().item(), "kid_inception": kid_mean.item(), "kid_inception_std": kid_std.item()}


def make_evaluator(cfg_data, dev, n, seed, cache_dir, inception_net=None, dataset=None):
    """The evaluator for a data config; `dataset`: a checkpoint's record of its prepared image folder."""
    if toy.is_toy(cfg_data):
        return toy.PointsEvaluator(cfg_data.name, dev, n, seed)
    if cfg_data.name == "folder":
        return FolderEvaluator(cfg_data, dev, n, seed, inception_net, dataset)
    return Evaluator(cfg_data, dev, n, seed, cache_dir, inception_net)


def scalars(result):
    """The numbers of a result, as TensorBoard tags."""
    return {f"Metrics/{k}": v for k, v in result.items() if isinstance(v, (int, float))}


def write_json(path, mapping):
    """Atomic JSON write: a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(mapping, indent=2) + "\n")
    os.replace(tmp, path)


def evaluate(cfg):
    """Score cfg.ckpt; print the metrics and merge them into metrics.json beside the checkpoint."""
    schema.check_eval(cfg)
    G, latent_dim, ckpt, dev = load_generator(cfg)
    cfg_data = data.config_from(ckpt["config"]["data"], root=cfg.data_root, cache_dir=cfg.cache_dir)
    net = inception.features(cfg.inception_weights) if cfg.inception else None
    evaluator = make_evaluator(cfg_data, dev, cfg.n, cfg.seed, cfg.cache_dir, net, ckpt.get("dataset"))
    result = {"step": ckpt["step"], "n": cfg.n, "seed": cfg.seed, "data": cfg_data.name,
              "ema": bool(cfg.ema and ckpt.get("G_ema")),
              **({"classifier_accuracy": evaluator.accuracy} if hasattr(evaluator, "accuracy") else {}),
              **evaluator(G, latent_dim, ckpt.get("num_classes"))}
    path = Path(ckpt["path"])
    out = path.parent / "metrics.json"
    try:
        merged = json.loads(out.read_text()) if out.is_file() else {}
        key = f"{path.name} (ema=false)" if ckpt.get("G_ema") and not result["ema"] else path.name
        merged[key] = result
        write_json(out, merged)
    except (OSError, ValueError) as e:
        raise EnvironmentProblem(f"cannot update {out} ({e}); move or fix that file") from None
    for key, value in result.items():
        if not isinstance(value, list):  # class_histogram, fd_per_class: in metrics.json
            print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    print(f"wrote {out} [{path.name}]")
    return result


main = cli.command("gan-eval", "eval", evaluate)

if __name__ == "__main__":
    main()
