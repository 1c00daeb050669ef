from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli import data
from gan_cli.errors import ConfigError, DataError, EnvironmentProblem


def data_cfg(**kw):
    base = {"name": "mnist", "root": "data", "path": None, "image_size": 28, "channels": 1, "download": False,
            "mirror": False, "labels": "auto", "crop": "center", "background": "white", "min_size": 8,
            "test_fraction": 0.0, "ram_share": 0.5, "cache_dir": str(kw.get("path")) + "-cache"}
    return OmegaConf.create({**base, **kw})


def test_mnist_from_raw_idx_files_via_torchvision(mnist_root):
    train = data.load(data_cfg(root=str(mnist_root)), train=True)
    test = data.load(data_cfg(root=str(mnist_root)), train=False)
    assert train.shape == (96, 1, 28, 28) and test.shape == (32, 1, 28, 28) and train.dtype == torch.uint8
    assert train.max() == 255  # the bright bars written by the fixture


def test_resized_once_to_the_configured_size(mnist_root):
    images = data.load(data_cfg(root=str(mnist_root), image_size=32))
    assert images.shape == (96, 1, 32, 32) and images.dtype == torch.uint8


def test_batches_are_in_minus_one_to_one(mnist_root):
    src = data.batches(data_cfg(root=str(mnist_root)), 16, torch.device("cpu"), seed=0)
    x, y = src.next()
    assert x.shape == (16, 1, 28, 28) and x.min() >= -1 and x.max() == 1
    images, labels = data.load_labeled(data_cfg(root=str(mnist_root)))
    first = src.order.perm[:16]
    assert torch.equal(y, labels[first]) and torch.equal(x, data.uint8_to_signed(images[first]))  # each its own label
    assert src.num_classes == 10


def test_missing_mnist_offline_names_the_folder_and_the_offline_option(tmp_path):
    with pytest.raises(EnvironmentProblem, match=f"MNIST is not in {tmp_path}.*data=mnist5k"):
        data.load(data_cfg(root=str(tmp_path)))


def test_failed_download_names_the_cause_and_leaves_no_folders(tmp_path, monkeypatch):
    """torchvision's message names the file first and the cause last; the folders the attempt made go again."""
    import torchvision.datasets.mnist as tvm

    def no_network(self):
        Path(self.raw_folder).mkdir(parents=True)
        (Path(self.raw_folder) / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\n"
                           "<urlopen error [Errno -3] Temporary failure in name resolution>\n")

    monkeypatch.setattr(tvm.MNIST, "download", no_network)
    root = tmp_path / "data"
    with pytest.raises(EnvironmentProblem, match=f"MNIST is not in {root} and could not be downloaded "
                                                 r"\(<urlopen error \[Errno -3\] Temporary failure in name resolution>\)"
                                                 ".*data=mnist5k"):
        data.load(data_cfg(root=str(root), download=True))
    assert not root.exists()
    root.mkdir()
    (root / "mine.txt").write_text("kept")
    with pytest.raises(EnvironmentProblem):
        data.load(data_cfg(root=str(root), download=True))
    assert sorted(p.name for p in root.iterdir()) == ["mine.txt"]  # what was there before stays, nothing else


def test_channel_mismatch_says_what_to_set(mnist_root):
    with pytest.raises(ConfigError, match="set data.channels=1"):
        data.load(data_cfg(root=str(mnist_root), channels=3))


def test_mnist5k_offline_subset_holds_out_50_per_class():
    train = data.load(data_cfg(name="mnist5k"), train=True)
    test = data.load(data_cfg(name="mnist5k"), train=False)
    assert train.shape == (4500, 1, 28, 28) and test.shape == (500, 1, 28, 28)
    assert not any(torch.equal(t, train[i]) for t in test[:5] for i in range(0, 4500, 450))


def test_permutation_covers_every_image_once_per_epoch_and_resumes_exactly():
    order = data.Permutation(10, 3, seed=1)
    epoch = torch.cat([order.next() for _ in range(3)])  # 3 batches of 3; the 10th image waits
    assert len(set(epoch.tolist())) == 9
    state = order.state_dict()
    ahead = [order.next() for _ in range(5)]  # crosses into the next epochs
    again = data.Permutation(10, 3, seed=99)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(ahead, [again.next() for _ in range(5)]))


def test_batch_larger_than_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size=20 is larger than the dataset"):
        data.Permutation(10, 20, seed=0)


def test_an_image_folder_of_classes_resumes_in_order(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (40, 30), (i * 50, 10, 200 if cls == "a" else 0)).save(tmp_path / cls / f"{i}.png")
    cfg = data_cfg(name="folder", path=str(tmp_path), image_size=16, channels=3)
    src = data.batches(cfg, 4, torch.device("cpu"), seed=0)
    x, y = src.next()
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert src.num_classes == 2 and torch.equal(y, (x[:, 2].mean((1, 2)) < 0).long())  # class b: no blue
    state = src.state_dict()
    ahead = [src.next() for _ in range(3)]
    again = data.batches(cfg, 4, torch.device("cpu"), seed=5)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for pair in zip(ahead, [again.next() for _ in range(3)]) for a, b in zip(*pair))


def test_folder_without_path_or_images(tmp_path):
    with pytest.raises(ConfigError, match="data=folder needs data.path"):
        data.load(data_cfg(name="folder", channels=3))
    with pytest.raises(DataError, match=f"no usable image in {tmp_path}"):
        data.load(data_cfg(name="folder", path=str(tmp_path), channels=3))


@pytest.mark.parametrize("source", ["tensor", "folder"])
def test_ranks_take_disjoint_slices_of_the_global_batch(tmp_path, mnist_root, source):
    """Under torchrun, rank 0's and rank 1's batches of m are the halves of one process's batch of 2m."""
    if source == "folder":
        for cls in ("a", "b"):
            (tmp_path / cls).mkdir()
            for i in range(8):
                Image.new("L", (16, 16), i * 30 + (cls == "b") * 5).save(tmp_path / cls / f"{i}.png")
        cfg = data_cfg(name="folder", path=str(tmp_path), image_size=16, channels=1)
    else:
        cfg = data_cfg(name="mnist", root=str(mnist_root), download=False)
    one = data.batches(cfg, 8, torch.device("cpu"), seed=3)
    ranks = [data.batches(cfg, 4, torch.device("cpu"), seed=3, rank=r, world=2) for r in (0, 1)]
    for _ in range(5):  # past an epoch boundary of the 16-image folder
        (x, y), shares = one.next(), [r.next() for r in ranks]
        assert torch.equal(x, torch.cat([s[0] for s in shares])) and torch.equal(y, torch.cat([s[1] for s in shares]))


def test_the_real_preview_is_drawn_across_a_class_sorted_split():
    """mnist5k is sorted by digit: the first 64 images are all zeros, a seeded draw is not."""
    images = torch.arange(10).repeat_interleave(50).to(torch.uint8).view(-1, 1, 1, 1)  # "class" = pixel value
    src = data.TensorBatches(images, 16, torch.device("cpu"), seed=0)
    first, again = src.preview(64), src.preview(64)
    assert len(first.unique()) > 1 and torch.equal(first, again)  # mixed, and the same every run
