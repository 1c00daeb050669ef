"""Typed schemas for every config group, so Hydra rejects a typo'd key or a wrong type at start-up.

The YAML files in configs/ hold the values; these dataclasses hold the names and types.
`check()` then rejects values that type-check but make no sense (a batch of 0, k < 1, ...).
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gan_cli.errors import ConfigError
from gan_cli.speed import DTYPES


@dataclass
class MLPConfig:
    name: str = "mlp"
    g_hidden: List[int] = field(default_factory=lambda: [256, 512, 1024])
    d_hidden: List[int] = field(default_factory=lambda: [1024, 512, 256])
    dropout: float = 0.3


@dataclass
class DCGANConfig:
    name: str = "dcgan"
    g_features: int = 64  # width of G's last hidden layer (ngf in Radford et al.)
    g_extra: int = 0  # 3x3 convolutions added after each of G's hidden blocks
    d_features: int = 64  # width of D's first layer (ndf)
    d_norm: str = "batch"  # batch | spectral | none: how D's hidden layers are normalised
    d_extra: int = 0  # 3x3 convolutions added after each of D's blocks but the input layer


@dataclass
class AdamParams:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 2e-4
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999])


@dataclass
class SGDParams:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.01
    momentum: float = 0.5


@dataclass
class AdamConfig:
    generator: AdamParams = field(default_factory=AdamParams)
    discriminator: AdamParams = field(default_factory=AdamParams)


@dataclass
class SGDConfig:
    generator: SGDParams = field(default_factory=SGDParams)
    discriminator: SGDParams = field(default_factory=SGDParams)


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = "data"  # where torchvision datasets live (and are downloaded to)
    path: Optional[str] = None  # data=folder: a folder of class subfolders of images
    image_size: int = 28
    channels: int = 1
    download: bool = True
    workers: int = 2  # DataLoader workers, data=folder only


@dataclass
class TrainerConfig:
    steps: int = 2000  # counted in G updates
    d_steps: int = 1  # k: D updates per G update
    log_every: int = 50
    sample_every: int = 500  # 0: only at the end
    ckpt_every: int = 1000  # 0: only last.pt at the end
    keep_last: int = 3  # step_*.pt files kept besides last.pt
    max_nonfinite_skips: int = 0  # steps with an inf/NaN loss or gradient to skip before stopping
    eval_every: int = 0  # quality metrics every N steps (0: off)
    ema_decay: float = 0.0  # > 0: sample and evaluate an exponential moving average of G's weights
    precision: str = "auto"  # auto | 32 | bf16 | 16 (autocast; 16 with a GradScaler per network)
    channels_last: str = "auto"  # auto (on for convolutional models) | true | false
    compile: bool = False  # torch.compile G and D
    finite_check: str = "auto"  # step | log (auto: step on CPU, log on CUDA)
    sync_batch_norm: bool = False  # under torchrun: batch norm over the global batch (CUDA only)


@dataclass
class EvalSettings:
    n: int = 10_000  # generated samples scored against the whole test split
    seed: int = 0
    cache_dir: str = "~/.cache/gan-cli"  # where the domain classifier is cached


@dataclass
class TrainConfig:
    model: Any = MISSING
    optimizer: Any = MISSING
    loss: LossConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    batch_size: int = 64  # m
    latent_dim: int = 100
    device: str = "auto"
    seed: int = 0
    resume: Optional[str] = None


@dataclass
class SampleConfig:
    ckpt: str = MISSING
    n: int = 64
    seed: int = 0
    out: Optional[str] = None
    format: str = "grid"  # grid | png | npz
    device: str = "auto"
    nrow: int = 8
    ema: bool = True  # use the moving average of G's weights when the checkpoint has one


@dataclass
class EvalConfig:
    ckpt: str = MISSING
    n: int = 10_000
    seed: int = 0
    device: str = "auto"
    cache_dir: str = "~/.cache/gan-cli"
    data_root: Optional[str] = None  # where the checkpoint's dataset lives, if not where it trained
    inception: bool = False  # also FID/KID with ImageNet Inception (needs its weights)
    inception_weights: Optional[str] = None
    ema: bool = True  # score the moving average of G's weights when the checkpoint has one


MODEL_SCHEMAS = {"mlp": MLPConfig, "dcgan": DCGANConfig}  # model name -> its keys and their defaults


def model_with_defaults(model_cfg):
    """A model config stored in a checkpoint, with the keys added to gan-cli since at their defaults, which
    build what the checkpoint's version built; models.build and resume's architecture check both read it so."""
    node = MODEL_SCHEMAS.get(model_cfg.get("name"))
    return OmegaConf.merge(dataclasses.asdict(node()), model_cfg) if node else model_cfg


def register():
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    # Kept out of the user-facing groups so `model=` lists only real options.
    for group, name, node in (*(("model", name, node) for name, node in MODEL_SCHEMAS.items()),
                              ("optimizer", "adam", AdamConfig), ("optimizer", "sgd", SGDConfig),
                              ("loss", "loss", LossConfig), ("data", "data", DataConfig)):
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


def check_train(cfg):
    """Reject what the types allow but training cannot use, before any work starts."""
    unknown = list(_unknown_keys(cfg, TrainConfig))
    _require(not unknown, f"unknown config key(s) {', '.join(unknown)}; remove them (see `gan-train --cfg job` for valid keys)")
    t = cfg.trainer
    _require(cfg.batch_size > 0, f"batch_size must be a positive integer, got {cfg.batch_size}; e.g. batch_size=64")
    _require(cfg.latent_dim > 0, f"latent_dim must be a positive integer, got {cfg.latent_dim}; e.g. latent_dim=100")
    _require(t.d_steps >= 1, f"trainer.d_steps (k) must be >= 1, got {t.d_steps}; e.g. trainer.d_steps=1")
    _require(t.steps >= 1, f"trainer.steps must be >= 1, got {t.steps}")
    _require(t.log_every >= 1, f"trainer.log_every must be >= 1, got {t.log_every}")
    for key in ("sample_every", "ckpt_every", "keep_last", "max_nonfinite_skips", "eval_every"):
        _require(t[key] >= 0, f"trainer.{key} must be >= 0 (0 turns it off), got {t[key]}")
    _require(cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
             f"device must be auto, cpu or cuda, got {cfg.device!r}")
    _require(cfg.data.image_size > 0, f"data.image_size must be positive, got {cfg.data.image_size}")
    _require(cfg.data.channels in (1, 3) or cfg.data.name in ("ring8", "grid25"),
             f"data.channels must be 1 or 3, got {cfg.data.channels}")
    _require(0 <= t.ema_decay < 1, f"trainer.ema_decay must be in [0, 1), got {t.ema_decay}")
    _require(str(t.precision).lower() in ("auto", *DTYPES),
             f"trainer.precision must be auto, 32, bf16 or 16, got {t.precision!r}")
    _require(str(t.channels_last).lower() in ("auto", "true", "false"),
             f"trainer.channels_last must be auto, true or false, got {t.channels_last!r}")
    _require(str(t.finite_check).lower() in ("auto", "step", "log"),
             f"trainer.finite_check must be auto, step or log, got {t.finite_check!r}")
    _require(str(t.finite_check).lower() != "log" or not t.max_nonfinite_skips,
             "trainer.max_nonfinite_skips needs trainer.finite_check=step (a step can only be "
             "skipped if it is checked before the optimizer steps)")
    _require(cfg.eval.n > 1, f"eval.n must be at least 2, got {cfg.eval.n}")
    for net in ("generator", "discriminator"):
        lr = cfg.optimizer[net].lr
        _require(lr > 0, f"optimizer.{net}.lr must be > 0, got {lr}")


def check_sample(cfg):
    unknown = list(_unknown_keys(cfg, SampleConfig))
    _require(not unknown, f"unknown config key(s) {', '.join(unknown)}; remove them")
    _require(cfg.n > 0, f"n must be a positive integer, got {cfg.n}")
    _require(cfg.nrow > 0, f"nrow must be a positive integer, got {cfg.nrow}")
    _require(cfg.format in ("grid", "png", "npz"), f"format must be grid, png or npz, got {cfg.format!r}")
    _require(cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
             f"device must be auto, cpu or cuda, got {cfg.device!r}")


def check_eval(cfg):
    unknown = list(_unknown_keys(cfg, EvalConfig))
    _require(not unknown, f"unknown config key(s) {', '.join(unknown)}; remove them")
    _require(cfg.n > 1, f"n must be at least 2, got {cfg.n}")
    _require(cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
             f"device must be auto, cpu or cuda, got {cfg.device!r}")
