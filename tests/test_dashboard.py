"""TensorBoard as a user reads it: the GAN dashboard, D's logit histograms, HParams of a sweep, run names."""

import re

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import run_cli, tiny_overrides
from gan_cli import dashboard, losses, models
from gan_cli.board import events_folder
from gan_cli.loop import TrainState
from gan_cli.train import train


def events(folder):
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    ea.Reload()
    return ea


def charts(ea):
    """{chart title: [tag regexes]} of the run's custom-scalars layout."""
    config = ea.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    (category,) = layout_pb2.Layout.FromString(config).category
    assert category.title == "GAN"
    return {chart.title: list(chart.multiline.tag) for chart in category.chart}


def session(folder):
    """(hparams {name: value}, metric tags) of a run's HParams session."""
    plugin = events(folder).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    values = {k: v.string_value or v.number_value or v.bool_value for k, v in start.hparams.items()}
    return values, {m.name.tag for m in experiment.metric_infos}


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, mnist_root):
    from hydra import compose, initialize_config_module

    run = tmp_path_factory.mktemp("dashboard")
    over = [*tiny_overrides(mnist_root), "trainer.eval_every=2", "eval.n=32",
            f"eval.cache_dir={tmp_path_factory.mktemp('cache')}", "loss=saturating"]
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        train(compose("train", overrides=over), run, over)
    return run


def test_the_gan_dashboard_pairs_the_players_curves_and_every_chart_plots_logged_tags(evaluated_run):
    ea = events(events_folder(evaluated_run))
    layout = charts(ea)
    assert list(layout)[:3] == ["Loss/D and Loss/G", "D(x) and D(G(z)), probabilities", "G's gradient norm"]
    assert layout["Loss/D and Loss/G"] == ["^Loss/D$", "^Loss/G$"]
    assert layout["D(x) and D(G(z)), probabilities"] == ["^D/real$", "^D/fake$"]
    assert layout["Precision and recall"] == ["^Metrics/precision$", "^Metrics/recall$"]
    logged = ea.Tags()["scalars"]
    for title, patterns in layout.items():
        for pattern in patterns:
            assert [tag for tag in logged if re.search(pattern, tag)], f"{title}: {pattern} plots nothing"


def test_a_critic_loss_charts_raw_scores_and_its_penalty():
    stat_names = losses.build({"name": "wgan_gp", "gp_lambda": 10.0, "drift": 0.0, "r1_gamma": 0.0}).stat_names()
    layout = dashboard.layout(stat_names, {})["GAN"]
    assert layout["D's raw scores on real and fake"] == ["Multiline", ["^D/real_score$", "^D/fake_score$"]]
    assert layout["Critic estimate and penalties"] == ["Multiline", ["^Loss/wasserstein_estimate$", "^Loss/gp$"]]
    assert not [title for title in layout if "Inception" in title]  # no quality charts without evaluation


def test_d_logit_histograms_are_written_at_the_sample_steps(evaluated_run):
    ea = events(events_folder(evaluated_run))
    for tag in ("D_logits/real", "D_logits/fake"):
        histograms = ea.Histograms(tag)
        assert [h.step for h in histograms] == [2, 4], tag
        assert histograms[-1].histogram_value.num == 64  # the real grid's images, the fixed-noise fakes


def test_d_logits_leave_d_and_the_random_stream_as_they_were():
    G, D = models.build(OmegaConf.create({"name": "mlp", "g_hidden": [8], "d_hidden": [8], "dropout": 0.5,
                                          "conditional": False}), 4, (1, 28, 28))
    s = TrainState(G, D, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()))
    x = torch.rand(16, 1, 28, 28)
    before = [t.clone() for t in D.state_dict().values()]
    rng = torch.get_rng_state()
    logits = dashboard.d_logits(s, x)
    assert logits.shape == (16,) and torch.isfinite(logits).all()
    assert torch.equal(torch.get_rng_state(), rng)  # dropout drew from a forked stream
    assert all(torch.equal(a, b) for a, b in zip(before, D.state_dict().values()))


def test_hparams_are_the_overrides_and_metrics_the_final_quality(evaluated_run):
    values, metrics = session(events_folder(evaluated_run))
    assert values["loss"] == "saturating" and values["trainer.eval_every"] == 2
    assert {"final/fd_classifier", "final/inception_score", "final/precision", "final/recall",
            "final/class_entropy"} <= metrics
    assert not [tag for tag in metrics if tag.startswith("final/Loss/")]


def test_hparams_of_keeps_numbers_and_writes_groups_and_lists_as_given():
    cfg = OmegaConf.create({"trainer": {"steps": 5}, "loss": {"name": "hinge"}, "optimizer": {"betas": [0, 0.9]}})
    assert dashboard.hparams_of(["trainer.steps=5", "loss=hinge", "+experiment=ring8", "optimizer.betas=[0,0.9]"],
                                cfg) == {"trainer.steps": 5, "loss": "hinge", "experiment": "ring8",
                                         "optimizer.betas": "[0,0.9]"}
    assert dashboard.final_metrics(None, {"Loss/D": 1.0, "Speed/images_per_sec": 9.0}) == {"final/Loss/D": 1.0}


def test_a_sweep_names_each_run_by_its_overrides_and_leaves_an_hparams_session_each(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("gan-train", "-m", "+experiment=ring8", "device=cpu", "trainer.steps=4", "trainer.log_every=2",
            "trainer.eval_every=4", "eval.n=200", "loss=saturating,hinge", f"hydra.sweep.dir={sweep}", check=True)
    folders = sorted(sweep.glob("*/tb/*"))
    assert [f.name for f in folders] == ["loss=saturating", "loss=hinge"]  # the swept key alone
    sessions = [session(folder) for folder in folders]
    assert [values for values, _ in sessions] == [{"loss": "saturating"}, {"loss": "hinge"}]  # one column: the swept key
    assert all({"final/modes_covered", "final/high_quality", "final/kl_to_uniform"} <= m for _, m in sessions)


def test_a_single_run_is_named_by_its_time_and_changed_overrides_and_resume_writes_on_there(tmp_path, mnist_root):
    run = tmp_path / "run"
    run_cli("gan-train", *tiny_overrides(mnist_root), "seed=0", "loss=hinge", f"hydra.run.dir={run}", check=True)
    (folder,) = (run / "tb").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}_.*", folder.name)
    assert "loss=hinge" in folder.name and "data=mnist" in folder.name
    assert "seed=0" not in folder.name  # the default's value
    values, _ = session(folder)
    assert values["loss"] == "hinge" and "seed" not in values
    run_cli("gan-train", f"resume={run}", "trainer.steps=6", check=True)
    assert list((run / "tb").iterdir()) == [folder]
    assert [e.step for e in events(folder).Scalars("Loss/G")] == [2, 4, 6]


def test_a_run_from_before_run_names_resumes_into_tb_itself(make_cfg, mnist_root, tmp_path):
    from gan_cli import checkpoint

    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    (folder,) = (tmp_path / "tb").iterdir()
    for events_file in folder.iterdir():  # the old layout: events in tb/, no name in the checkpoint
        events_file.rename(tmp_path / "tb" / events_file.name)
    folder.rmdir()
    raw = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    for key in ("sha256", "format", "version", "tensorboard"):
        raw.pop(key)
    checkpoint.save(tmp_path / "checkpoints" / "last.pt", raw)
    train(make_cfg(f"resume={tmp_path}", "trainer.steps=6"), tmp_path, ["trainer.steps=6"])
    assert not [p for p in (tmp_path / "tb").iterdir() if p.is_dir()]
    assert [e.step for e in events(tmp_path / "tb").Scalars("Loss/G")] == [2, 4, 6]
