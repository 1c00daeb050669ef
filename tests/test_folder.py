"""data=folder: any folder of images, prepared once, nothing in it fatal, scored on its held-out images.
Every folder here is written by the test itself."""

import json
import shutil

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image

from conftest import TINY_MODELS, Fixed, run_cli
from gan_cli import data, decode, evaluate, folder
from gan_cli.errors import ConfigError, DataError
from gan_cli.sample import sample
from gan_cli.train import train
from test_latent import sample_cfg
from test_reliability import assert_same_tree, scalars, trained_state

rng = np.random.default_rng(0)


def noise_image(w, h, mode="RGB"):
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def folder_cfg(path, cache, **kw):
    base = {"name": "folder", "path": str(path), "image_size": 16, "channels": 3, "labels": "auto", "crop": "center",
            "background": "white", "min_size": 8, "test_fraction": 0.05, "mirror": False, "ram_share": 0.5,
            "cache_dir": str(cache)}
    return OmegaConf.create({**base, **kw})


def write_messy(root):
    """A folder as people have them: formats and modes mixed, nested, broken files, notes, hidden files."""
    (root / "nested" / "deeper").mkdir(parents=True)
    noise_image(40, 30).save(root / "a.png")
    noise_image(30, 40).save(root / "b.jpg", quality=90)
    noise_image(33, 33).save(root / "c.JPEG")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(root / "clear.png")  # fully transparent red
    Image.new("P", (24, 24), 3).save(root / "palette.gif")
    Image.new("L", (24, 24), 77).save(root / "grey.bmp")
    noise_image(20, 20).save(root / "x.webp")
    noise_image(20, 20, "L").save(root / "x.tif")
    noise_image(16, 16).save(root / "nested" / "deeper" / "d.png")
    good = (root / "a.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not an image")
    Image.new("L", (3, 3)).save(root / "tiny.png")
    (root / "README.txt").write_text("my pictures")
    (root / ".hidden.png").write_bytes(good)
    (root / ".thumbs").mkdir()
    (root / ".thumbs" / "a.png").write_bytes(good)


def write_flat(root, n, start=0, size=(20, 20)):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        noise_image(*size).save(root / f"{i:04d}.png")


def image_of(prepared, rel):
    images, _ = prepared.split(train=True)
    all_images = np.concatenate([images, prepared.split(train=False)[0]])
    return all_images[prepared.manifest["files"].index(rel)]


def test_a_messy_folder_is_prepared_with_every_usable_image_and_names_the_rest(tmp_path):
    write_messy(tmp_path / "pics")
    p = folder.open_or_prepare(folder_cfg(tmp_path / "pics", tmp_path / "cache"))
    assert sorted(p.manifest["files"]) == ["a.png", "b.jpg", "c.JPEG", "clear.png", "grey.bmp", "nested/deeper/d.png",
                                           "palette.gif", "x.tif", "x.webp"]
    assert p.count == 9 and p.shape == (3, 16, 16) and p.array_path.stat().st_size == 9 * 3 * 16 * 16
    skipped = dict(p.manifest["skipped"])
    assert sorted(skipped) == ["empty.jpg", "notes.png", "tiny.png", "truncated.png"]
    assert skipped["empty.jpg"].startswith("empty") and skipped["truncated.png"].startswith("truncated")
    assert "not an image" in skipped["notes.png"] and "too small (3x3" in skipped["tiny.png"]
    assert p.manifest["ignored"] == ["README.txt"] and p.classes is None
    assert (image_of(p, "clear.png") == 255).all()  # transparency composited onto white
    assert (image_of(p, "grey.bmp") == 77).all()  # greyscale to RGB
    lines = "\n".join(p.describe("in memory"))
    assert "9 images of 3x16x16" in lines and "skipped 4 file(s)" in lines and "truncated.png: truncated" in lines
    assert "README.txt" in lines and str(p.manifest_path) in lines
    p.array_path.write_bytes(b"")  # a prepared copy that lost its array is prepared again
    assert folder.open_or_prepare(folder_cfg(tmp_path / "pics", tmp_path / "cache")).array_path.stat().st_size > 0


def test_greyscale_background_and_pad(tmp_path):
    Image.new("RGB", (40, 20), (255, 0, 0)).save((tmp_path / "wide.png"))
    Image.new("LA", (20, 20), (200, 0)).save(tmp_path / "clear.png")
    cache = tmp_path / "cache"
    pad = folder.open_or_prepare(folder_cfg(tmp_path, cache, crop="pad", background="black", min_size=1))
    wide = image_of(pad, "wide.png")
    assert (wide[:, 4:12] == np.array([255, 0, 0])[:, None, None]).all()  # the whole picture in the middle
    assert (wide[:, :4] == 0).all() and (wide[:, 12:] == 0).all()  # black bands above and below
    center = folder.open_or_prepare(folder_cfg(tmp_path, cache, channels=1))
    assert (image_of(center, "wide.png") == 76).all()  # red's luma, cropped: no band
    assert (image_of(center, "clear.png") == 255).all() and center.shape == (1, 16, 16)
    with pytest.raises(ConfigError, match="data.background='nocolour' is not a colour"):
        folder.open_or_prepare(folder_cfg(tmp_path, cache, background="nocolour"))


def test_labels_from_class_subfolders_auto_none_and_subfolders(tmp_path):
    for cls in ("dogs", "cats"):
        write_flat(tmp_path / "pets" / cls, 3)
    cache = tmp_path / "cache"
    p = folder.open_or_prepare(folder_cfg(tmp_path / "pets", cache, test_fraction=0))
    assert p.classes == ["cats", "dogs"]
    names, labels = p.manifest["files"], p.split()[1]
    assert [p.classes[y] for y in labels] == [name.split("/")[0] for name in names]
    assert folder.open_or_prepare(folder_cfg(tmp_path / "pets", cache, labels="none")).classes is None
    write_flat(tmp_path / "pets", 1, start=50)  # one image beside the class folders: no longer labeled
    assert folder.open_or_prepare(folder_cfg(tmp_path / "pets", cache)).classes is None
    with pytest.raises(ConfigError, match=r"data.labels=subfolders, but 1 image\(s\) lie directly in .*0050.png"):
        folder.open_or_prepare(folder_cfg(tmp_path / "pets", cache, labels="subfolders"))


def test_the_split_is_stable_as_images_are_added_and_a_changed_folder_is_prepared_again(tmp_path, monkeypatch):
    write_flat(tmp_path / "f", 200)
    cfg = folder_cfg(tmp_path / "f", tmp_path / "cache", test_fraction=0.2)
    first = folder.open_or_prepare(cfg)
    held = set(first.manifest["files"][first.train_count:])
    assert 20 <= len(held) <= 60 and first.count == 200
    write_flat(tmp_path / "f", 100, start=200)
    second = folder.open_or_prepare(cfg)
    assert second.manifest_path != first.manifest_path and second.count == 300
    now_held = set(second.manifest["files"][second.train_count:])
    assert held <= now_held and not (now_held - held) & set(first.manifest["files"])  # old images kept their side

    def no_decoding(*args):
        raise AssertionError("an unchanged folder was decoded again")

    monkeypatch.setattr(folder, "decode_all", no_decoding)
    assert folder.open_or_prepare(cfg).manifest_path == second.manifest_path  # unchanged: mapped as it is
    record = second.record()
    Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / "f" / "0000.png")  # edited during training
    assert folder.open_or_prepare(cfg, record).manifest_path == second.manifest_path  # the prepared copy trains on
    with pytest.raises(AssertionError, match="decoded again"):
        folder.open_or_prepare(cfg)  # a new run sees the changed folder


def test_many_files_are_decoded_on_several_processes_alike(tmp_path, monkeypatch):
    write_flat(tmp_path / "f", 40, size=(24, 18))
    one = folder.open_or_prepare(folder_cfg(tmp_path / "f", tmp_path / "one"))
    monkeypatch.setattr(decode, "PARALLEL_FROM", 8)
    assert decode.workers_for(40) == decode.workers_for(10**6)
    many = folder.open_or_prepare(folder_cfg(tmp_path / "f", tmp_path / "many"))
    assert one.manifest["files"] == many.manifest["files"]
    assert np.array_equal(one.split()[0], many.split()[0])


def test_a_folder_without_a_usable_image_is_one_line_exit_3_and_leaves_no_run_folder(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "notes.txt").write_text("no pictures yet")
    (tmp_path / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n")
    proc = run_cli("gan-train", "data=folder", f"data.path={tmp_path / 'pics'}", f"data.cache_dir={tmp_path / 'c'}",
                   f"hydra.run.dir={tmp_path / 'run'}", "device=cpu")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("gan-train: error: no usable image in ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
    with pytest.raises(DataError, match="1 image file"):
        folder.open_or_prepare(folder_cfg(tmp_path / "pics", tmp_path / "c"))
    with pytest.raises(ConfigError, match="is not a folder"):
        folder.open_or_prepare(folder_cfg(tmp_path / "nowhere", tmp_path / "c"))


def test_a_large_set_is_memory_mapped_and_batches_the_same(tmp_path):
    write_flat(tmp_path / "f", 40)
    batches = {}
    for share in (0.5, 0.0):
        cfg = folder_cfg(tmp_path / "f", tmp_path / "cache", ram_share=share, mirror=True)
        torch.manual_seed(0)
        src = data.batches(cfg, 8, torch.device("cpu"), seed=1)
        batches[share] = [src.next()[0] for _ in range(6)]  # past an epoch of 38 training images
        assert ("memory-mapped" in src.describe("folder")[1]) == (share == 0.0)
    assert all(torch.equal(a, b) for a, b in zip(batches[0.5], batches[0.0]))
    assert batches[0.5][0].shape == (8, 3, 16, 16) and -1 <= batches[0.5][0].min() and batches[0.5][0].max() <= 1


def test_mirror_flips_a_random_half_on_the_device(tmp_path):
    write_flat(tmp_path / "f", 64)
    cfg = folder_cfg(tmp_path / "f", tmp_path / "cache", test_fraction=0)
    plain = data.batches(cfg, 64, torch.device("cpu"), seed=0).next()[0]
    cfg.mirror = True
    torch.manual_seed(0)
    flipped = data.batches(cfg, 64, torch.device("cpu"), seed=0).next()[0]
    same, mirrored = [(flipped[i] == x).all().item() for i, x in enumerate(plain)], \
        [(flipped[i] == x.flip(-1)).all().item() for i, x in enumerate(plain)]
    assert all(a or b for a, b in zip(same, mirrored)) and 16 < sum(mirrored) < 48


def overrides(path, cache, *extra, model="dcgan"):
    return ["data=folder", f"data.path={path}", f"data.cache_dir={cache}", "data.image_size=16", "device=cpu",
            f"model={model}", *TINY_MODELS[model], "latent_dim=8", "batch_size=8", "trainer.log_every=2",
            "trainer.sample_every=2", "trainer.ckpt_every=0", *extra]


def test_a_conditional_run_on_class_subfolders_resumes_bit_exactly_and_is_sampled_and_scored_from_elsewhere(
        tmp_path, monkeypatch):
    for cls in ("circles", "squares"):
        write_flat(tmp_path / "shapes" / cls, 30)
    monkeypatch.chdir(tmp_path)  # data.path relative to where gan-train starts
    over = overrides("shapes", tmp_path / "cache", "model.conditional=true", "data.mirror=true",
                     "data.test_fraction=0.2")
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        train(compose("train", overrides=[*over, "trainer.steps=6"]), tmp_path / "straight", over)
        train(compose("train", overrides=[*over, "trainer.steps=3"]), tmp_path / "split", over)
        train(compose("train", overrides=[f"resume={tmp_path / 'split'}", "trainer.steps=6"]), tmp_path / "split",
              ["trainer.steps=6"])
    assert_same_tree(trained_state(tmp_path / "straight"), trained_state(tmp_path / "split"))
    assert scalars(tmp_path / "straight") == scalars(tmp_path / "split")
    ckpt = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["num_classes"] == 2 and ckpt["dataset"]["source"] == str(tmp_path / "shapes")
    assert ckpt["dataset"]["count"] == 60

    monkeypatch.chdir(tmp_path / "shapes")  # elsewhere: the relative data.path no longer points at the folder
    out = sample(sample_cfg(tmp_path / "split", tmp_path / "g", label=1))
    assert np.load(out / "images.npz")["images"].shape == (4, 16, 16, 3)
    cfg = OmegaConf.create({"ckpt": str(tmp_path / "split"), "n": 32, "seed": 0, "device": "cpu",
                            "data_root": None, "inception": False, "inception_weights": None, "ema": True,
                            "generator": None, "trust_code": False, "cache_dir": str(tmp_path / "other-cache")})
    first = evaluate.evaluate(cfg)
    assert {"fd_random_embed", "kid_random_embed", "precision_random_embed", "recall_random_embed",
            "density_random_embed", "coverage_random_embed"} <= set(first) and "fd_classifier" not in first
    shutil.rmtree(tmp_path / "cache")  # the prepared copy gone: prepared again from the recorded folder
    assert evaluate.evaluate(cfg) == first
    saved = json.loads((tmp_path / "split" / "checkpoints" / "metrics.json").read_text())
    assert saved["last.pt"]["fd_random_embed"] == first["fd_random_embed"]


def test_random_embedding_scores_real_images_best(tmp_path):
    write_flat(tmp_path / "f", 120, size=(16, 16))
    cfg = folder_cfg(tmp_path / "f", tmp_path / "cache", test_fraction=0.5)
    ev = evaluate.FolderEvaluator(cfg, torch.device("cpu"), n=40, seed=0)

    real = ev.real
    ev.n = len(real)  # G's samples: exactly the held-out images
    as_real, flat = ev(Fixed(real), 4), ev(Fixed(torch.zeros_like(real)), 4)
    assert as_real["fd_random_embed"] == pytest.approx(0.0, abs=1e-2) and as_real["coverage_random_embed"] == 1.0
    assert as_real["precision_random_embed"] == 1.0 and flat["fd_random_embed"] > as_real["fd_random_embed"] + 1
    assert flat["coverage_random_embed"] < 0.2 and flat["precision_random_embed"] == 0.0
    assert ev(Fixed(real), 4) == as_real  # fixed network, fixed seed: the same numbers


@pytest.mark.parametrize("override,match", [
    ("data.labels=classes", "data.labels must be auto, none or subfolders"),
    ("data.crop=stretch", "data.crop must be center or pad"),
    ("data.min_size=0", "data.min_size must be at least 1"),
    ("data.test_fraction=1", r"data.test_fraction must be in \[0, 1\)"),
    ("data.ram_share=2", r"data.ram_share must be in \[0, 1\]"),
])
def test_folder_values_are_checked_at_start_up(override, match):
    from gan_cli import schema

    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("train", overrides=["data=folder", "data.path=/anywhere", override])
    with pytest.raises(ConfigError, match=match):
        schema.check_train(cfg)
