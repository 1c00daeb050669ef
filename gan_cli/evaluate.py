"""gan-eval, and the Evaluator that gan-train's trainer.eval_every uses: G's samples against the test split."""

import json
import os
from pathlib import Path

import torch

from gan_cli import classifier, cli, data, inception, latent, metrics, schema, toy
from gan_cli.board import generate
from gan_cli.errors import EnvironmentProblem
from gan_cli.sample import load_generator


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
        z = torch.randn(self.n, latent_dim, generator=torch.Generator().manual_seed(self.seed))
        y = latent.classes_in_turn(self.n, num_classes) if num_classes else None
        fake = generate(G, z.to(self.device), y)
        feats, logits = self.net.embed(fake)
        feats, logits, real_feats = feats.cpu(), logits.cpu(), self.real_feats.cpu()
        m = min(len(real_feats), len(feats))  # precision/recall compare sets of equal size
        with torch.random.fork_rng(devices=[]):  # KID and IS draw random subsets; training's RNG stays put
            torch.manual_seed(self.seed)
            kid, kid_std = metrics.kernel_distance(real_feats, feats)
            score, score_std = metrics.inception_score(logits, splits=max(1, min(10, len(logits) // 1000)))
        precision, recall = metrics.precision_recall(real_feats[:m], feats[:m])
        hist, entropy, covered = metrics.class_coverage(logits)
        result = {
            "fd_classifier": metrics.frechet_distance(real_feats, feats),
            "kid_classifier": kid, "kid_classifier_std": kid_std,
            "precision": precision, "recall": recall,
            "inception_score": score, "inception_score_std": score_std,
            "class_entropy": entropy, "classes_covered": covered, "class_histogram": hist,
        }
        if num_classes:
            result.update(self._conditional(feats, logits, y, num_classes))
        if self.inception is not None:
            result.update(self._inception(fake))
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

    def _inception(self, fake):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        net = self.inception.to(self.device)
        fid = FrechetInceptionDistance(feature=net).to(self.device)
        kid = KernelInceptionDistance(feature=net, subsets=50,
                                              subset_size=min(1000, len(self.real), len(fake))).to(self.device)
        for images, real in ((self.real, True), (fake, False)):
            for chunk in images.split(200):
                x = inception.to_uint8_rgb(chunk).to(self.device)
                fid.update(x, real=real)
                kid.update(x, real=real)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        return {"fid_inception": fid.compute().item(), "kid_inception": kid_mean.item(), "kid_inception_std": kid_std.item()}


def make_evaluator(cfg_data, dev, n, seed, cache_dir, inception_net=None):
    if toy.is_toy(cfg_data):
        return toy.PointsEvaluator(cfg_data.name, dev, n, seed)
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
    cfg_data = data.config_from(ckpt["config"]["data"], root=cfg.data_root)
    net = inception.features(cfg.inception_weights) if cfg.inception else None
    evaluator = make_evaluator(cfg_data, dev, cfg.n, cfg.seed, cfg.cache_dir, net)
    result = {"step": ckpt["step"], "n": cfg.n, "seed": cfg.seed, "data": cfg_data.name,
              "ema": bool(cfg.ema and ckpt.get("G_ema")),
              "classifier_accuracy": getattr(evaluator, "accuracy", None),
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
