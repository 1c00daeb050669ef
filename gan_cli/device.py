"""Device selection and seeding, shared by every command."""

import torch

from gan_cli.errors import EnvironmentProblem


def pick(name):
    """torch.device for device=auto|cpu|cuda|cuda:N; a clear error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EnvironmentProblem(f"device={name} but CUDA is not available on this machine "
                                 f"(torch {torch.__version__}); use device=cpu or device=auto")
    return torch.device(name)


def rng_state():
    """The global RNG states that noise and dropout draw from, as plain tensors."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
