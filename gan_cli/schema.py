"""Typed schemas for every config group, so Hydra rejects a typo'd key or a wrong type at start-up.

The schemas hold names and types; every value, defaults included, lives in the YAML files of configs/
(one home for each default). `check_*` then reject values that type-check but make no sense (a batch of 0,
k < 1, ...). Imports no torch: the commands check their config before loading it.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gan_cli.errors import ConfigError

PRECISIONS = ("32", "bf16", "16")
TOY_DATA = ("ring8", "grid25")


@dataclass
class MLPConfig:
    name: str = MISSING
    g_hidden: List[int] = MISSING
    d_hidden: List[int] = MISSING
    dropout: float = MISSING
    conditional: bool = MISSING


@dataclass
class DCGANConfig:
    name: str = MISSING
    g_features: int = MISSING
    g_extra: int = MISSING
    d_features: int = MISSING
    d_norm: str = MISSING
    d_extra: int = MISSING
    conditional: bool = MISSING


@dataclass
class CustomConfig:
    name: str = MISSING
    generator: Any = MISSING  # {_target_: module.Class, and any constructor keys}
    discriminator: Any = MISSING
    d_output: str = MISSING
    conditional: bool = MISSING


@dataclass
class AdamParams:
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = MISSING
    betas: List[float] = MISSING


@dataclass
class SGDParams:
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = MISSING
    momentum: float = MISSING


@dataclass
class AdamConfig:
    generator: AdamParams = MISSING
    discriminator: AdamParams = MISSING


@dataclass
class SGDConfig:
    generator: SGDParams = MISSING
    discriminator: SGDParams = MISSING


@dataclass
class LossConfig:
    name: str = MISSING
    r1_gamma: float = MISSING


@dataclass
class WGANGPConfig(LossConfig):
    gp_lambda: float = MISSING
    drift: float = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = MISSING
    path: Optional[str] = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    download: bool = MISSING
    mirror: bool = MISSING
    subset: Optional[int] = MISSING
    # data=folder (gan_cli/folder.py)
    labels: str = MISSING
    crop: str = MISSING
    background: str = MISSING
    min_size: int = MISSING
    test_fraction: float = MISSING
    ram_share: float = MISSING
    cache_dir: str = MISSING


@dataclass
class AugmentConfig:
    name: str = MISSING
    policy: List[str] = MISSING  # diffaugment
    ops: List[str] = MISSING  # ada
    p: float = MISSING
    target: float = MISSING
    interval: int = MISSING
    kimg: float = MISSING
    p_max: float = MISSING


@dataclass
class TrainerConfig:
    steps: int = MISSING
    d_steps: int = MISSING
    log_every: int = MISSING
    sample_every: int = MISSING
    ckpt_every: int = MISSING
    keep_last: int = MISSING
    max_nonfinite_skips: int = MISSING
    eval_every: int = MISSING
    ema_decay: float = MISSING
    precision: str = MISSING
    channels_last: str = MISSING
    compile: bool = MISSING
    finite_check: str = MISSING
    sync_batch_norm: bool = MISSING
    progress: str = MISSING


@dataclass
class EvalSettings:
    n: int = MISSING
    seed: int = MISSING
    cache_dir: str = MISSING


@dataclass
class TrainConfig:
    model: Any = MISSING
    optimizer: Any = MISSING
    loss: Any = MISSING
    data: DataConfig = MISSING
    augment: AugmentConfig = MISSING
    trainer: TrainerConfig = MISSING
    eval: EvalSettings = MISSING
    batch_size: int = MISSING
    latent_dim: int = MISSING
    device: str = MISSING
    seed: int = MISSING
    resume: Optional[str] = MISSING
    trust_code: bool = MISSING


@dataclass
class SampleConfig:
    ckpt: str = MISSING
    n: int = MISSING
    seed: int = MISSING
    out: Optional[str] = MISSING
    format: str = MISSING
    device: str = MISSING
    nrow: int = MISSING
    mode: str = MISSING
    seeds: Optional[List[int]] = MISSING
    steps: int = MISSING
    truncation: Optional[float] = MISSING
    label: Any = MISSING
    ema: bool = MISSING
    generator: Optional[str] = MISSING
    trust_code: bool = MISSING
    p: Optional[float] = MISSING


@dataclass
class EvalConfig:
    ckpt: str = MISSING
    n: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    cache_dir: str = MISSING
    data_root: Optional[str] = MISSING
    inception: bool = MISSING
    inception_weights: Optional[str] = MISSING
    ema: bool = MISSING
    generator: Optional[str] = MISSING
    trust_code: bool = MISSING


def register():
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    # Kept out of the user-facing groups so `model=` lists only real options.
    for group, name, node in (("model", "mlp", MLPConfig), ("model", "dcgan", DCGANConfig),
                              ("model", "custom", CustomConfig),
                              ("optimizer", "adam", AdamConfig), ("optimizer", "sgd", SGDConfig),
                              ("loss", "loss", LossConfig), ("loss", "wgan_gp", WGANGPConfig),
                              ("data", "data", DataConfig), ("augment", "augment", AugmentConfig)):
        cs.store(group=f"schema/{group}", name=name, node=node)


def _unknown_keys(node, schema, prefix=""):
    """Keys in `node` that its dataclass `schema` does not declare (Hydra lets `+key=` add them)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        path = f"{prefix}{key}"
        if key not in fields:
            yield path
            continue
        child = node._get_node(key)
        child_type = OmegaConf.get_type(child) if isinstance(child, DictConfig) else None
        if child_type is not None and dataclasses.is_dataclass(child_type):
            yield from _unknown_keys(child, child_type, path + ".")


def _require(ok, message):
    if not ok:
        raise ConfigError(message)


def _check_known(cfg, schema, hint=""):
    unknown = list(_unknown_keys(cfg, schema))
    _require(not unknown, f"unknown config key(s) {', '.join(unknown)}; remove them{hint}")


def _check_device(name):
    _require(name in ("auto", "cpu", "cuda") or name.startswith("cuda:"), f"device must be auto, cpu or cuda, got {name!r}")


def check_train(cfg):
    """Reject what the types allow but training cannot use, before any work starts."""
    _check_known(cfg, TrainConfig, " (see `gan-train --cfg job` for valid keys)")
    t = cfg.trainer
    _require(cfg.batch_size > 0, f"batch_size must be a positive integer, got {cfg.batch_size}; e.g. batch_size=64")
    _require(cfg.latent_dim > 0, f"latent_dim must be a positive integer, got {cfg.latent_dim}; e.g. latent_dim=100")
    _require(t.d_steps >= 1, f"trainer.d_steps (k) must be >= 1, got {t.d_steps}; e.g. trainer.d_steps=1")
    _require(t.steps >= 1, f"trainer.steps must be >= 1, got {t.steps}")
    _require(t.log_every >= 1, f"trainer.log_every must be >= 1, got {t.log_every}")
    for key in ("sample_every", "ckpt_every", "keep_last", "max_nonfinite_skips", "eval_every"):
        _require(t[key] >= 0, f"trainer.{key} must be >= 0 (0 turns it off), got {t[key]}")
    _check_device(cfg.device)
    if cfg.data.name not in TOY_DATA:  # toy points have no image size or channels
        _require(cfg.data.image_size > 0, f"data.image_size must be positive, got {cfg.data.image_size}")
        _require(cfg.data.channels in (1, 3), f"data.channels must be 1 or 3, got {cfg.data.channels}")
    if cfg.data.name == "folder":
        _check_folder(cfg.data)
    _require(cfg.data.get("subset") is None or cfg.data.subset > 0,
             f"data.subset must be a positive number of images (or null: all), got {cfg.data.get('subset')}")
    if cfg.augment.name == "ada":
        a = cfg.augment
        _require(0 <= a.p <= a.p_max <= 1, f"augment.p and augment.p_max need 0 <= p <= p_max <= 1, got p={a.p}, "
                 f"p_max={a.p_max}")
        _require(-1 <= a.target <= 1, f"augment.target must be in [-1, 1] (r_t is a mean of signs), got {a.target}")
        _require(a.interval >= 1 and a.kimg > 0, f"augment.interval must be >= 1 and augment.kimg > 0, got "
                 f"{a.interval} and {a.kimg}")
    _require(0 <= t.ema_decay < 1, f"trainer.ema_decay must be in [0, 1), got {t.ema_decay}")
    _require(str(t.precision).lower() in ("auto", *PRECISIONS),
             f"trainer.precision must be auto, 32, bf16 or 16, got {t.precision!r}")
    _require(str(t.channels_last).lower() in ("auto", "true", "false"),
             f"trainer.channels_last must be auto, true or false, got {t.channels_last!r}")
    _require(str(t.progress).lower() in ("auto", "bar", "lines", "none"),
             f"trainer.progress must be auto, bar, lines or none, got {t.progress!r}")
    _require(str(t.finite_check).lower() in ("auto", "step", "log"),
             f"trainer.finite_check must be auto, step or log, got {t.finite_check!r}")
    _require(str(t.finite_check).lower() != "log" or not t.max_nonfinite_skips,
             "trainer.max_nonfinite_skips needs trainer.finite_check=step (a step can only be "
             "skipped if it is checked before the optimizer steps)")
    _require(cfg.eval.n > 1, f"eval.n must be at least 2, got {cfg.eval.n}")
    if cfg.model.name == "custom":
        _require(cfg.model.d_output in ("auto", "logits", "probability"),
                 f"model.d_output must be auto, logits or probability, got {cfg.model.d_output!r}")
    for net in ("generator", "discriminator"):
        lr = cfg.optimizer[net].lr
        _require(lr > 0, f"optimizer.{net}.lr must be > 0, got {lr}")


def _check_folder(d):
    _require(d.labels in ("auto", "none", "subfolders"), f"data.labels must be auto, none or subfolders, got {d.labels!r}")
    _require(d.crop in ("center", "pad"), f"data.crop must be center or pad, got {d.crop!r}")
    _require(d.min_size >= 1, f"data.min_size must be at least 1 pixel, got {d.min_size}")
    _require(0 <= d.test_fraction < 1, f"data.test_fraction must be in [0, 1), got {d.test_fraction}; e.g. 0.05")
    _require(0 <= d.ram_share <= 1, f"data.ram_share must be in [0, 1], got {d.ram_share}; e.g. 0.5")


def check_sample(cfg):
    _check_known(cfg, SampleConfig)
    _require(cfg.n > 0, f"n must be a positive integer, got {cfg.n}")
    _require(cfg.nrow > 0, f"nrow must be a positive integer, got {cfg.nrow}")
    _require(cfg.format in ("grid", "png", "npz"), f"format must be grid, png or npz, got {cfg.format!r}")
    _require(cfg.mode in ("sample", "interpolate", "augment", "progress"),
             f"mode must be sample, interpolate, augment or progress, got {cfg.mode!r}")
    _require(cfg.get("p") is None or 0 <= cfg.p <= 1, f"p must be a probability in [0, 1], got {cfg.get('p')}")
    _require(cfg.steps >= 2, f"steps must be at least 2 (both ends of an interpolation), got {cfg.steps}")
    _require(not cfg.seeds or len(cfg.seeds) >= 2, f"seeds needs at least two seeds to interpolate between, got "
             f"{cfg.seeds}; e.g. seeds=[0,1]")
    _require(cfg.truncation is None or cfg.truncation > 0, f"truncation must be > 0 (psi), got {cfg.truncation}")
    _check_device(cfg.device)


def check_eval(cfg):
    _check_known(cfg, EvalConfig)
    _require(cfg.n > 1, f"n must be at least 2, got {cfg.n}")
    _check_device(cfg.device)
