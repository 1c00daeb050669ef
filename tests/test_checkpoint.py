import pytest
import torch
from torch import nn

from gan_cli import checkpoint, run_folder
from gan_cli.errors import CheckpointError


def payload():
    return {"step": 7, "G": nn.Linear(3, 2).state_dict(), "config": {"model": {"name": "mlp"}}}


def test_save_is_plain_data_that_loads_with_weights_only(tmp_path):
    checkpoint.save(tmp_path / "last.pt", payload())
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    assert raw["step"] == 7 and raw["format"] == checkpoint.FORMAT and len(raw["sha256"]) == 64
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_run_folder_resolves_to_its_last_checkpoint(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    checkpoint.save(tmp_path / "checkpoints" / "last.pt", payload())
    assert checkpoint.load(tmp_path)["path"] == str(tmp_path / "checkpoints" / "last.pt")
    assert run_folder.containing_run(tmp_path / "checkpoints" / "last.pt") == tmp_path


def test_a_flipped_byte_in_the_weights_is_caught_by_the_checksum(tmp_path):
    path = tmp_path / "last.pt"
    p = payload()
    p["G"]["weight"] = torch.full((2, 3), 0.5)
    checkpoint.save(path, p)
    data = bytearray(path.read_bytes())
    i = data.find(torch.full((1,), 0.5).numpy().tobytes())  # the first stored weight
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["G"]["weight"][0, 0] != 0.5  # torch itself accepts it
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(path)


@pytest.mark.parametrize("content,match", [
    (b"", "not a readable"),
    (b"model:\n  name: mlp\n", "not a readable"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a readable"),
])
def test_files_that_are_not_checkpoints(tmp_path, content, match):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path)


def test_a_bare_state_dict_and_a_missing_file(tmp_path):
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="bare state_dict"):
        checkpoint.load(tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        checkpoint.load(tmp_path)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_architecture_mismatch_names_the_keys():
    with pytest.raises(CheckpointError, match=r"G does not match.*shape differs: weight"):
        checkpoint.load_weights(nn.Linear(3, 2), nn.Linear(4, 2).state_dict(), "G", "x.pt")
    with pytest.raises(CheckpointError, match=r"missing: bias"):
        checkpoint.load_weights(nn.Linear(3, 2), {"weight": torch.zeros(2, 3)}, "G", "x.pt")


def test_retention_keeps_the_newest_step_files(tmp_path):
    for step in range(1, 6):
        checkpoint.write(tmp_path, payload(), step, keep_last=2, periodic=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000004.pt", "step_0000005.pt"]


def test_every_load_is_weights_only_and_mapped_to_the_cpu(tmp_path, monkeypatch):
    # map_location="cpu" is what lets a checkpoint written on a GPU load on a CPU-only machine.
    checkpoint.save(tmp_path / "last.pt", payload())
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    checkpoint.load(tmp_path / "last.pt")
    assert seen["map_location"] == "cpu" and seen["weights_only"] is True
