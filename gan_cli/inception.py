"""Standard FID/KID features: torchmetrics' Inception-v3 (the torch-fidelity port of the TF FID net).

Optional (pip install 'gan-cli[inception]') and online once: the weights are downloaded into torch's hub
cache. They are checked to be plain tensors (weights_only=True) before torch-fidelity loads them.
"""

from pathlib import Path

import torch

from gan_cli.errors import CheckpointError, EnvironmentProblem

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


def weights_file(weights=None):
    """The Inception weights: the given file, or torch's hub cache, downloading them there once."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EnvironmentProblem(f"eval.inception_weights={path} does not exist; download {URL} there")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / URL.rsplit("/", 1)[1]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(URL, str(path), progress=False)
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EnvironmentProblem(f"the Inception weights for FID/KID could not be downloaded ({reason}); "
                                     f"download {URL} with internet and pass eval.inception_weights=<file>, "
                                     "or drop eval.inception=true to use the offline domain-classifier metrics") from None
    return path


def features(weights=None):
    """Inception pool features (2048) as a torchmetrics feature extractor; takes uint8 (N, 3, H, W)."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
    except ImportError:  # pragma: no cover - torchmetrics is a dependency
        _TORCH_FIDELITY_AVAILABLE = False
    if not _TORCH_FIDELITY_AVAILABLE:
        raise EnvironmentProblem("eval.inception=true needs torch-fidelity: pip install 'gan-cli[inception]'")
    path = weights_file(weights)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path} is not plain Inception weights; refused without unpickling it") from None
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path))


def to_uint8_rgb(images):
    """[-1, 1] (N, C, H, W) -> uint8 (N, 3, H, W), as the Inception net expects."""
    x = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
