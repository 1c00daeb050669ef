"""Where a gan-train run writes: Hydra resolvers for its folder, log file and sweep job names, the check that
the folder can be written before Hydra creates it, and the run's name in TensorBoard. Imports torch only
under torchrun or on resume."""

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from gan_cli.errors import EXIT_ENVIRONMENT


def _is_main():
    return int(os.environ.get("RANK", 0)) == 0


def containing_run(ckpt_path):
    """The run folder a checkpoint file belongs to."""
    ckpt_path = Path(ckpt_path)
    return ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent


def run_dir_for(resume, default):
    """hydra.run.dir: a resumed run continues in its own folder; otherwise a new timestamped one."""
    path = Path(str(resume)).expanduser() if resume and resume != "auto" else None
    if path is not None and path.exists():
        return str(containing_run(path) if path.is_file() else path)
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return default
    from gan_cli import dist

    try:
        return dist.from_main(default)  # under torchrun: rank 0's timestamp, even if the ranks started a second apart
    except RuntimeError as e:  # rank 0 died first; this runs inside Hydra's set-up, before errors are reported
        if not dist.is_lost_peer(e):
            raise
        print(f"gan-train: error: {dist.lost_peer(e)}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_ENVIRONMENT) from None


def _hydra_subdir_for(resume):
    """Keep the original run's .hydra/ intact when resuming into its folder; only rank 0 writes one."""
    if not _is_main():
        return None
    return f".hydra/resume-{datetime.now():%Y%m%d-%H%M%S}" if resume and resume != "auto" else ".hydra"


def _log_file(run_dir, job_name):
    """train.log in the run folder, written by rank 0 alone (the other ranks log to the console)."""
    return str(Path(run_dir) / f"{job_name}.log") if _is_main() else os.devnull


def _dirname(text):
    """A sweep job's folder name from its overrides: one path component, not too long."""
    return text.replace("/", "_")[:120]


class TensorBoardRun(NamedTuple):
    """How TensorBoard tells a run apart: its name (events in tb/<name>/) and the overrides that set it apart
    (its HParams)."""

    name: str
    overrides: list


def tensorboard_run(hc, cfg):
    """A sweep job: the keys its sweep varies, named by their values (loss=hinge,seed=1). A single run: the
    overrides whose values differ from the defaults, named after its start time (20261203-101500_loss=hinge)."""
    parsed = OverridesParser.create().parse_overrides(list(hc.overrides.task))
    overrides = {override_key(o): o.input_line for o in parsed}
    if hc.mode == RunMode.MULTIRUN:
        swept = _swept_keys(Path(hc.sweep.dir) / "multirun.yaml")
        shown = sorted(text for key, text in overrides.items() if key in swept)
        return TensorBoardRun(_dirname(",".join(shown) or hc.job.override_dirname) or f"job{hc.job.num}", shown)
    defaults = hydra.compose(hc.job.config_name)
    exclude = set(hc.job.config.override_dirname.exclude_keys)
    shown = sorted(text for key, text in overrides.items() if key not in exclude and not _same(cfg, defaults, key))
    return started_now(shown)


def started_now(overrides):
    """A run named after its start time, then its overrides."""
    parts = [f"{datetime.now():%Y%m%d-%H%M%S}", ",".join(overrides)]
    return TensorBoardRun(_dirname("_".join(part for part in parts if part)), list(overrides))


def override_key(override):
    """The config key or group a parsed override sets: `+experiment=x` -> experiment."""
    return override.key_or_group.lstrip("+~")


def _swept_keys(multirun_yaml):
    """The keys a sweep varies (loss=a,b; seed=range(3)), read from the multirun.yaml Hydra writes at its start."""
    if not multirun_yaml.is_file():
        return set()
    task = OmegaConf.load(multirun_yaml).hydra.overrides.task
    return {override_key(o) for o in OverridesParser.create().parse_overrides(list(task)) if o.is_sweep_override()}


def _same(cfg, defaults, key):
    """Whether `key` holds the same value (or group) in both configs; False where either lacks it (+experiment)."""
    missing = object()
    value = OmegaConf.select(cfg, key, default=missing)
    return value is not missing and value == OmegaConf.select(defaults, key, default=missing)


def register_resolvers():
    for name, fn in (("gan_dirname", _dirname), ("gan_run_dir", run_dir_for),
                     ("gan_hydra_subdir", _hydra_subdir_for), ("gan_log_file", _log_file)):
        OmegaConf.register_new_resolver(name, fn, replace=True)


NEW_FOLDERS = {}  # run folder this process created -> the folders above it created with it, deepest first


def remove_if_unused(run_dir):
    """After a start that failed: remove the run folder if this command created it and training never began
    (no TensorBoard events, no checkpoints), and then the folders above it that it created (outputs/ and its
    date folder) where they are empty, so a failed start leaves the tree as it found it; anything else stays."""
    run_dir = Path(run_dir).resolve()
    if run_dir in NEW_FOLDERS and _is_main() and not any((run_dir / name).exists() for name in ("tb", "checkpoints")):
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in NEW_FOLDERS[run_dir]:
            try:
                parent.rmdir()  # only when empty: another run's folder beside this one stays, and so does its parent
            except OSError:
                break


def _missing(folder):
    """folder and the folders above it that do not exist yet, deepest first."""
    missing, path = [], folder.resolve()
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


class CheckRunDir(Callback):
    """Before Hydra creates the run folder: one clear line (exit 4) if it cannot be written."""

    def on_run_start(self, config, **kwargs):
        folder = Path(config.hydra.run.dir)
        missing = _missing(folder)
        if missing:
            NEW_FOLDERS[missing[0]] = missing[1:]
        _check_writable(folder, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs):
        _check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


def _check_writable(folder, key):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gan-cli-write-test-{os.getpid()}"  # per process: torchrun ranks probe at once
        probe.touch()
        probe.unlink()
    except OSError as e:
        print(f"gan-train: error: cannot write the run folder {folder} ({e.strerror or e}); "
              f"choose another {key}=", flush=True, file=sys.stderr)
        raise SystemExit(EXIT_ENVIRONMENT) from None
