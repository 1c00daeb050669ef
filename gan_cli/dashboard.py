"""TensorBoard beyond one chart per tag: the "GAN" dashboard that puts the two players' curves side by side
(custom scalars), D's logits as histograms, and the HParams entry that ranks a sweep's runs by quality."""

import copy
import re

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gan_cli import toy
from gan_cli.loop import as_logits
from gan_cli.models import call
from gan_cli.run_folder import override_key

# The quality charts, when trainer.eval_every is on: title -> the metric tags it plots.
IMAGE_QUALITY = {
    "FD on classifier features (lower is better)": ["Metrics/fd_classifier"],
    "Inception score (higher is better)": ["Metrics/inception_score"],
    "Precision and recall": ["Metrics/precision", "Metrics/recall"],
    "Class entropy (2.303: all 10 classes alike)": ["Metrics/class_entropy"],
}
CONDITIONAL_QUALITY = {"Conditional accuracy": ["Metrics/conditional_accuracy"]}
FOLDER_QUALITY = {  # an image folder: random-network features (random_features.py), against its held-out images
    "FD on random-network features (lower is better)": ["Metrics/fd_random_embed"],
    "KID on random-network features (lower is better)": ["Metrics/kid_random_embed"],
    "Precision, recall, density and coverage (random features)":
        [f"Metrics/{name}_random_embed" for name in ("precision", "recall", "density", "coverage")],
}
POINTS_QUALITY = {
    "Modes covered": ["Metrics/modes_covered"],
    "Share of high-quality samples": ["Metrics/high_quality"],
    "KL to uniform over modes (lower is better)": ["Metrics/kl_to_uniform"],
}
# The final quality figures a run reports to HParams, where its evaluation has them.
HEADLINE = ("fd_classifier", "inception_score", "precision", "recall", "class_entropy", "conditional_accuracy",
            "modes_covered", "high_quality", "kl_to_uniform", "fd_random_embed", "kid_random_embed",
            "precision_random_embed", "recall_random_embed", "coverage_random_embed")


def quality_charts(cfg_data, conditional):
    """The quality charts of what a dataset's evaluator (evaluate.make_evaluator) reports."""
    if toy.is_toy(cfg_data):
        return POINTS_QUALITY
    if cfg_data.name == "folder":
        return FOLDER_QUALITY
    return {**IMAGE_QUALITY, **(CONDITIONAL_QUALITY if conditional else {})}


def layout(stat_names, quality):
    """The custom-scalars layout: one "GAN" category whose first charts tell the game (the losses together,
    D's verdict on real and fake together, G's gradient norm), then what the loss adds, then `quality`
    (quality_charts, when the run is evaluated)."""
    probabilities = "D/real" in stat_names
    charts = {
        "Loss/D and Loss/G": ["Loss/D", "Loss/G"],
        "D(x) and D(G(z)), probabilities" if probabilities else "D's raw scores on real and fake":
            ["D/real", "D/fake"] if probabilities else ["D/real_score", "D/fake_score"],
        "G's gradient norm": ["Grad/G_norm"],
    }
    extra = [name for name in stat_names if name in ("Loss/wasserstein_estimate", "Loss/gp", "Loss/r1")]
    if extra:
        charts["Critic estimate and penalties"] = extra
    augmented = [name for name in stat_names if name.startswith("Augment/")]
    if augmented:  # r_t rising toward 1: D is memorising the reals; ADA's p answers it
        charts["Augmentation: D's overfitting signal r_t and ADA's p"] = augmented
    charts.update(quality)
    # Multiline charts take regular expressions: anchored, each names exactly one tag.
    return {"GAN": {title: ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]] for title, tags in charts.items()}}


@torch.no_grad()
def d_logits(s, x, y=None):
    """D's logits on x as training sees them: a copy of D in training mode (batch norm on this batch's
    statistics), so neither D's running statistics nor training's random stream move."""
    D = copy.deepcopy(s.D).train()
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return as_logits(s, call(D, x, y))


def hparams_of(overrides, cfg):
    """The overrides that set the run apart (run_folder.tensorboard_run) as HParams, {key: value}: a sweep's
    table gets one column per swept key. A value is the config's where it is a number, string or flag, else
    (a group, a list) as written."""
    result = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override_key(override)
        value = OmegaConf.select(cfg, key, default=None)
        result[key] = value if isinstance(value, (bool, int, float, str)) else override.input_line.split("=", 1)[-1]
    return result


def final_metrics(quality, scalars):
    """The HParams metrics: the last evaluation's headline figures when the run was evaluated, else the
    final logged losses."""
    if quality:
        return {f"final/{k}": quality[k] for k in HEADLINE if isinstance(quality.get(k), (int, float))}
    return {f"final/{k}": v for k, v in scalars.items() if k.startswith("Loss/")}
