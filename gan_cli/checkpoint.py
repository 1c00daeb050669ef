"""Checkpoints: plain data only (tensors, numbers, strings, dicts), loaded with weights_only=True.

Layout: {format, version, sha256, step, G, D, opt_g, opt_d, rng, fixed_z, config, overrides}.
Saves are atomic (temporary file, fsync, os.replace), and a SHA-256 of the contents catches the
silent corruption that torch.load itself accepts.
"""

import hashlib
import os
import pickle
from pathlib import Path

import torch

from gan_cli import files
from gan_cli.errors import CheckpointError

FORMAT = "gan-cli-checkpoint"
VERSION = 1
LAST = "last.pt"


def digest(obj, h=None):
    """SHA-256 over a nested structure of dicts, lists, tensors and scalars, independent of pickling."""
    h = h or hashlib.sha256()
    if isinstance(obj, dict):
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for value in obj:
            digest(value, h)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()


def save(path, payload):
    """Write `payload` to `path` atomically: readers see the old file or the new one, never half of one."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["sha256"] = digest(payload)
    fix = "free disk space or choose another output folder; the previous checkpoint is intact"
    with files.reporting(path, fix), files.atomic(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(path.parent)


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(path):
    """A checkpoint file, or a run folder's checkpoints/last.pt."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / LAST, path / LAST):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"no checkpoint in {path}: expected {path / 'checkpoints' / LAST}; "
                              "pass a run folder of gan-train or a .pt file")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}; pass a run folder of gan-train or a .pt file")
    return path


def load(path):
    """Load and verify a checkpoint onto the CPU, wherever it was saved. Never unpickles code."""
    path = resolve(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable gan-cli checkpoint ({_why(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gan-cli checkpoint (no '{FORMAT}' marker; a bare state_dict?); "
                              "pass a checkpoint written by gan-train")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {ckpt.get('version')!r}; this gan-cli reads "
                              f"version {VERSION}; use the gan-cli release that wrote it")
    stored = ckpt.pop("sha256", None)
    if stored != digest(ckpt):
        raise CheckpointError(f"{path} is corrupt (its SHA-256 does not match its contents); "
                              "use an earlier checkpoint of the run")
    ckpt["path"] = str(path)
    return ckpt


def _why(e):
    """A short reason; torch's own messages run to paragraphs and advise weights_only=False."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and "global" in text.lower():  # a class or function to import
        return "it holds Python objects, not plain data; refused without running them"
    if isinstance(e, pickle.UnpicklingError) or "zip archive" in text or isinstance(e, EOFError):
        return "not a complete PyTorch file: empty, truncated or another format"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(e).__name__}: {first}"[:200] if first else type(e).__name__


def load_weights(module, state_dict, what, path):
    """load_state_dict, strict, with the mismatched keys named in one line."""
    ours, theirs = module.state_dict(), state_dict
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    shapes = [k for k in ours if k in theirs and ours[k].shape != theirs[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)) if keys]
        raise CheckpointError(f"{path}: {what} does not match this architecture ({'; '.join(parts)})")
    module.load_state_dict(state_dict)


def step_name(step):
    return f"step_{step:07d}.pt"


def write(folder, payload, step, keep_last, periodic):
    """Save last.pt (and step_XXXXXXX.pt when periodic), then prune old step files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if periodic and keep_last > 0:
        save(folder / step_name(step), payload)
    save(folder / LAST, payload)
    # Delete old ones only after the new ones are safely written.
    for old in sorted(folder.glob("step_*.pt"))[:-keep_last or None]:
        old.unlink(missing_ok=True)


def remove_partial(folder):
    """Delete temporary files a killed save left behind; returns their names."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    return removed


def newest_valid(folder):
    """(newest checkpoint of `folder` that loads and verifies, or None; [(path, why) skipped])."""
    folder = Path(folder)
    candidates = [folder / LAST] + sorted(folder.glob("step_*.pt"), reverse=True)
    skipped = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            return load(path), skipped
        except CheckpointError as e:
            skipped.append((path, str(e)))
    return None, skipped
