import pytest
import torch

from gan_cli import models
from gan_cli.errors import ConfigError
from gan_cli.models.dcgan import plan

MLP = {"name": "mlp", "g_hidden": [32, 64], "d_hidden": [64, 32], "dropout": 0.3}
DCGAN = {"name": "dcgan", "g_features": 8, "d_features": 8}


@pytest.mark.parametrize("model", [MLP, DCGAN], ids=["mlp", "dcgan"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (3, 64)])
def test_contract_g_images_in_range_and_d_logits(model, channels, size):
    G, D = models.build(model, 10, (channels, size, size))
    z = torch.randn(5, 10)
    x = G(z)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x)
    assert logits.shape == (5,)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())


def test_dcgan_sizes_and_a_size_it_cannot_make():
    assert plan(28) == (7, 2) and plan(32) == (4, 3) and plan(64) == (4, 4)
    assert plan(48) is None and plan(8) is None
    with pytest.raises(ConfigError, match="cannot make 48x48.*model=mlp"):
        models.build(DCGAN, 10, (3, 48, 48))


@pytest.mark.parametrize("model", [MLP, DCGAN], ids=["mlp", "dcgan"])
def test_every_layer_is_torchs_own(model):
    """No hand-written kernels: the nets are built from torch.nn's layers alone."""
    for net in models.build(model, 10, (1, 28, 28)):
        leaves = [m for m in net.modules() if not list(m.children())]
        assert leaves and all(type(m).__module__.startswith("torch.nn.modules") for m in leaves)


def test_mlp_on_points_and_dcgan_refuses_them():
    G, D = models.build(MLP, 10, (2,))
    x = G(torch.randn(7, 10))
    assert x.shape == (7, 2) and D(x).shape == (7,)
    with pytest.raises(ConfigError, match="model=dcgan makes images.*model=mlp"):
        models.build(DCGAN, 10, (2,))


def test_dcgan_init_is_normal_0_002():
    G, D = models.build({**DCGAN, "g_features": 64, "d_features": 64}, 100, (3, 64, 64))
    w = D.net[2].weight
    assert abs(w.mean().item()) < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bn = G.net[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=5e-3) and (bn.bias == 0).all()


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'vae'"):
        models.build({"name": "vae"}, 10, (1, 28, 28))


def test_spectral_norm_d_has_unit_spectral_norm_layers_and_no_batch_norm():
    torch.manual_seed(0)
    _, D = models.build({**DCGAN, "d_norm": "spectral"}, 10, (1, 28, 28))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    for _ in range(50):  # each training-mode pass runs one step of the power iteration
        D(torch.randn(4, 1, 28, 28))
    for conv in (m for m in D.modules() if isinstance(m, torch.nn.Conv2d)):
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ConfigError, match="model.d_norm must be one of batch, spectral, layer, none, got 'group'"):
        models.build({**DCGAN, "d_norm": "group"}, 10, (1, 28, 28))
    _, old = models.build(DCGAN, 10, (1, 28, 28))  # configs saved before d_norm existed mean batch norm
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in old.modules())


@pytest.mark.parametrize("size,maps", [(28, [7, 14]), (32, [4, 8, 16])])
def test_g_extra_adds_a_size_keeping_3x3_convolution_after_each_hidden_block(size, maps):
    G, _ = models.build({**DCGAN, "g_extra": 1}, 10, (1, size, size))
    seen = []
    for conv in (m for m in G.modules() if isinstance(m, torch.nn.Conv2d)):
        assert conv.kernel_size == (3, 3) and conv.in_channels == conv.out_channels
        conv.register_forward_hook(lambda m, i, out: seen.append(out.shape[-1]))
    x = G(torch.randn(3, 10))
    assert x.shape == (3, 1, size, size) and x.abs().max() <= 1
    assert seen == maps
    x.sum().backward()
    assert all(p.grad is not None for p in G.parameters())
    # two per block with g_extra=2; with 0 (and configs saved before the option) the layers of earlier versions
    two, _ = models.build({**DCGAN, "g_extra": 2}, 10, (1, size, size))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in two.modules()) == 2 * len(maps)
    plain, _ = models.build({**DCGAN, "g_extra": 0}, 10, (1, size, size))
    old, _ = models.build(DCGAN, 10, (1, size, size))
    assert list(plain.state_dict()) == list(old.state_dict())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in old.modules())
    for bad in (-1, 1.5):
        with pytest.raises(ConfigError, match=r"model.g_extra must be a whole number >= 0"):
            models.build({**DCGAN, "g_extra": bad}, 10, (1, size, size))


@pytest.mark.parametrize("norm", ["spectral", "batch"])
@pytest.mark.parametrize("size,maps", [(28, [7]), (32, [8, 4])])
def test_d_extra_adds_a_size_keeping_3x3_convolution_after_each_block_but_the_input_layer(norm, size, maps):
    _, D = models.build({**DCGAN, "d_norm": norm, "d_extra": 1}, 10, (1, size, size))
    seen = []
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    for conv in convs:
        assert conv.in_channels == conv.out_channels and conv.stride == (1, 1)
        assert hasattr(conv, "parametrizations") == (norm == "spectral")
        conv.register_forward_hook(lambda m, i, out: seen.append(out.shape[-1]))
    logits = D(torch.randn(3, 1, size, size))
    assert logits.shape == (3,) and seen == maps
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())
    # batch norm follows each added convolution where D's other blocks have it
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) == (2 * len(maps) if norm == "batch" else 0)
    _, two = models.build({**DCGAN, "d_norm": norm, "d_extra": 2}, 10, (1, size, size))
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in two.modules()) == 2 * len(maps)
    _, plain = models.build({**DCGAN, "d_norm": norm, "d_extra": 0}, 10, (1, size, size))
    _, old = models.build({**DCGAN, "d_norm": norm}, 10, (1, size, size))  # configs saved before the option
    assert list(plain.state_dict()) == list(old.state_dict())
    assert not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in old.modules())
    for bad in (-1, 1.5, "1"):
        with pytest.raises(ConfigError, match=r"model.d_extra must be a whole number >= 0 \(extra 3x3 convolutions per D"):
            models.build({**DCGAN, "d_extra": bad}, 10, (1, size, size))


def test_mlp_d_has_dropout_after_each_hidden_layer():
    _, D = models.build(MLP, 10, (1, 28, 28))
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]


def test_a_layer_norm_d_scores_each_image_on_its_own():
    torch.manual_seed(0)
    _, D = models.build({**DCGAN, "d_norm": "layer", "d_extra": 1}, 10, (1, 28, 28))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in D.modules()) == 2  # 7x7 block and its extra layer
    x = torch.randn(6, 1, 28, 28)
    assert torch.allclose(D(x)[:2], D(x[:2]), atol=1e-5)  # a score does not depend on the rest of the batch
