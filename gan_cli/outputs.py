"""Everything a run writes into its folder: TensorBoard, sample grids, metrics and checkpoints.

On torchrun ranks other than 0, `Follower` stands in: it writes nothing and only takes part in deciding to stop.
"""

import functools
import json
import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from gan_cli import augment, checkpoint, dashboard, device, dist, files, latent, toy
from gan_cli.board import Board, generate
from gan_cli.errors import EnvironmentProblem, NonFiniteError

log = logging.getLogger(__name__)
GRID = 64  # images in the fixed-noise sample grid
ROW = 8  # images per grid row: a conditional run's grid has one row per class, the same 8 noise vectors in each
SCATTER = 2000  # points in the fixed-noise scatter plot of 2-D toy data


def fixed_noise_size(cfg_data):
    return SCATTER if toy.is_toy(cfg_data) else GRID


def fixed_inputs(fixed_z, num_classes):
    """(z, labels) of the sample grid: the fixed noise, or for a conditional run its first ROW vectors once per class."""
    return latent.row_per_class(fixed_z[:ROW], num_classes) if num_classes else (fixed_z, None)


def interpolation_inputs(fixed_z, num_classes):
    """(z, labels) of the end-of-training strip: rows of ROW steps along the arc between fixed noise vectors,
    one row per class for a conditional run (the same arc), else four rows (vectors 0 to 1, 2 to 3, ...)."""
    if num_classes:
        return latent.row_per_class(latent.slerp(fixed_z[0], fixed_z[1], ROW), num_classes)
    return torch.cat([latent.slerp(fixed_z[i], fixed_z[i + 1], ROW) for i in range(0, 8, 2)]), None


class Follower:
    """What every rank's outputs do: take part in deciding to stop. On torchrun ranks other than 0 that is all
    (they write nothing); rank 0's Outputs extends it with the writing."""

    def __init__(self, stopper):
        self.stopper = stopper
        self.last_scalars = {}

    @property
    def stop_signal(self):
        """The signal any rank received (all ranks then stop after the same step), recorded as this rank's own.
        A signal that arrives while the ranks compare theirs is kept for the next step's comparison, not
        overwritten by this one's answer (the handler runs as soon as the collective returns)."""
        agreed = dist.max_over_ranks(self.stopper.signum or 0)
        if agreed:
            self.stopper.signum = agreed
        return agreed or None

    def scalars(self, values, step):
        self.last_scalars = values

    def start(self, s):
        pass

    def samples(self, s, step):
        pass

    def evaluate(self, s, step):
        pass

    def checkpoint(self, s, step, periodic):
        pass

    def finish(self, s, final):
        pass

    def close(self, quiet=False):
        pass


def _reported(method):
    """A method of Outputs whose writes, failing for lack of space, quota or permission, end the run with one
    line naming the file (files.reporting), and how to go on."""

    @functools.wraps(method)
    def reported(self, *args, **kwargs):
        with self._writing():
            return method(self, *args, **kwargs)

    return reported


class Outputs(Follower):
    """Rank 0's outputs: the run folder's TensorBoard events, samples/, metrics.jsonl and checkpoints/. Every
    write is whole or absent (files.atomic, checkpoint.save) and a failed one is one line (_reported)."""

    def __init__(self, run_dir, cfg, overrides, board_run, fixed_z, data_src, stopper, evaluator=None, purge_step=None):
        super().__init__(stopper)
        self.run_dir, self.cfg, self.overrides, self.board_run = Path(run_dir), cfg, overrides, board_run
        self.fixed_z, self.data_src, self.evaluator = fixed_z, data_src, evaluator
        self.toy = toy.is_toy(cfg.data)
        with self._writing():
            self.board = Board(run_dir, self.board_run.name, purge_step)
        self.quality = None  # the last evaluation's result
        self.metrics_log = self.run_dir / "metrics.jsonl"
        if purge_step is not None and self.metrics_log.is_file():  # as TensorBoard: drop what will be redone
            kept = [line for line in self.metrics_log.read_text().splitlines() if json.loads(line)["step"] < purge_step]
            self.metrics_log.write_text("".join(line + "\n" for line in kept))
        self.real_points = data_src.preview(SCATTER) if self.toy else None
        # The real samples D's logits are shown on: the scatter's points, or the real grid's images.
        self.real = (self.real_points, None) if self.toy else (data_src.preview(GRID), data_src.preview_labels(GRID))

    @_reported
    def start(self, s):
        """What a new run logs once: its config, the GAN dashboard's layout and a grid of real data."""
        self.board.text("config", OmegaConf.to_yaml(self.cfg))
        quality = dashboard.quality_charts(self.cfg.data, bool(s.num_classes)) if self.evaluator else {}
        self.board.layout(dashboard.layout(s.stat_names, quality))
        if not self.toy:
            self.board.grid("Samples/real", self.real[0], 0, png_name="real.png")
        if s.augment is not None:  # what D sees of the same images (ADA: at p_max), before hours are spent
            self.board.grid("Samples/augmented", augment.preview(self.cfg.augment, self.real[0]), 0,
                            png_name="augmented.png")
        if self.data_src.prepared is not None:  # which prepared folder these are, to find it again
            self.board.text("Samples/real", "\n".join(self.data_src.prepared.describe()[:2]))

    @_reported
    def finish(self, s, final):
        if final and not self.stopper.signum:
            if not self.toy:
                z, y = interpolation_inputs(self.fixed_z, s.num_classes)
                self.board.grid("Samples/interpolation", self._generate(s, z, y), s.step, png_name="interpolation.png",
                                nrow=ROW)
            self.board.hparams(dashboard.hparams_of(self.board_run.overrides, self.cfg),
                               dashboard.final_metrics(self.quality, final), s.step)

    def close(self, quiet=False):
        """Flush and close TensorBoard's events (a second call does nothing). quiet: a write that fails is not
        reported, since the run is already stopping for another reason."""
        try:
            with self._writing():
                self.board.close()
        except EnvironmentProblem:
            if not quiet:
                raise

    @_reported
    def scalars(self, values, step):
        super().scalars(values, step)
        self.board.scalars(values, step)

    def _writing(self):
        resumable = (self.run_dir / "checkpoints" / checkpoint.LAST).is_file()
        fix = (f"free space there, then continue with resume={self.run_dir}" if resumable
               else "free space there, or choose another hydra.run.dir, and start again")
        return files.reporting(self.run_dir, fix)

    def _generate(self, s, z, y):
        return generate(s.sampler(self.cfg.latent_dim), z.to(next(s.G.parameters()).device), y)

    @_reported
    def samples(self, s, step):
        z, y = fixed_inputs(self.fixed_z, s.num_classes)
        fake = self._generate(s, z, y)
        if self.toy:
            self.board.scatter("Samples/scatter", fake, self.real_points, step, png_name=f"step_{step:07d}.png")
        else:
            self.board.grid("Samples/fixed_noise", fake, step, png_name=f"step_{step:07d}.png")
        self._d_histograms(s, step, z, y)

    def _d_histograms(self, s, step, z, y):
        """D's logits on real samples and on the training G's (not the average's) fixed-noise fakes: as D wins,
        the two pile up apart; a saturating G shows as fake logits far below zero."""
        dev = next(s.D.parameters()).device
        real, real_y = self.real
        fakes = generate(s.G, z.to(dev), y)
        for tag, x, labels in (("D_logits/real", real, real_y), ("D_logits/fake", fakes, y)):
            labels = labels.to(dev) if s.num_classes else None
            self.board.histogram(tag, dashboard.d_logits(s, x.to(dev), labels), step)

    @_reported
    def evaluate(self, s, step):
        from gan_cli.evaluate import scalars

        result = self.quality = self.evaluator(s.sampler(self.cfg.latent_dim), self.cfg.latent_dim, s.num_classes)
        self.board.scalars(scalars(result), step)
        files.append_line(self.metrics_log, json.dumps({"step": step, **result}))
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in scalars(result).items()))

    def checkpoint(self, s, step, periodic):
        weights = {"G": s.G.state_dict(), "D": s.D.state_dict()}
        if not all(t.isfinite().all() for sd in weights.values() for t in sd.values() if t.is_floating_point()):
            raise NonFiniteError(f"step {step}: the weights are not finite; refusing to save them over "
                                 "the last good checkpoint. Lower the learning rates")
        if s.G_ema is not None:
            s.sampler(self.cfg.latent_dim)  # saves the average with batch-norm statistics of its own weights
        payload = {
            "step": step, **weights, "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(),
            "G_ema": s.G_ema.state_dict() if s.G_ema is not None else {},
            "scalers": {"G": s.scaler_g.state_dict(), "D": s.scaler_d.state_dict()},  # empty unless precision=16
            "stats": {"sum": s.stats_sum, "names": list(s.stat_names), "count": s.stats_count,
                      "nonfinite_skips": s.nonfinite_skips},
            "rng": {**device.rng_state(), "data": self.data_src.state_dict()},
            "augment": s.augment.state_dict() if s.augment is not None else None,  # ADA's p, the augmentation RNG
            "fixed_z": self.fixed_z, "num_classes": s.num_classes,  # None: unconditional
            # an image folder's prepared set, so resume and gan-eval find it again from any folder
            "dataset": self.data_src.prepared.record() if self.data_src.prepared is not None else None,
            "tensorboard": self.board_run._asdict(),  # a resumed run writes on under tb/<name>/, with the same HParams
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "overrides": list(self.overrides),
        }
        checkpoint.write(self.run_dir / "checkpoints", payload, step, self.cfg.trainer.keep_last, periodic)
