"""Your own image folder, prepared once: found recursively, decoded on every core, converted, resized, and
written as one uint8 array with a JSON manifest into the cache; later runs map that file in well under a second.

The cache key covers every image file's relative path, size and modification time and the preparation
settings, so a changed folder is prepared again and an unchanged one never is. A file that cannot be used is
skipped and named, never fatal. The held-out split is a stable hash of each file's relative path.
Mechanism and measurements: docs/data.md.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_cli import files
from gan_cli.decode import decode_all, settings_of, workers_for
from gan_cli.errors import ConfigError, DataError, EnvironmentProblem
from gan_cli.progress import Progress

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FORMAT, VERSION = "gan-cli-prepared-folder", 1
MAX_TEST = 10_000  # held-out images at most, whatever data.test_fraction says


# ---------------------------------------------------------------------------------------------------------
# Finding the files


@dataclass
class Listing:
    root: Path
    files: list  # [(relative posix path, size, mtime_ns)] of image files, sorted
    ignored: list  # relative paths of files that are not images by their suffix
    unreadable: list  # [(relative path, why)] of files and folders that could not even be listed


def scan(root):
    """Every image file under root, recursively, following links once; hidden files and folders are left out.
    Plain strings, not pathlib: a folder of 100,000 files is listed in a fraction of a second."""
    files, ignored, unreadable, seen = [], [], [], set()
    stack = [(str(root), "")]  # (folder, its path relative to root with a trailing /)
    while stack:
        folder, prefix = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError as e:
            unreadable.append((prefix.rstrip("/") or ".", f"folder not readable ({e.strerror or e})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            try:
                if entry.is_dir():
                    stack.append((entry.path, rel + "/"))
                elif entry.name.lower().endswith(SUFFIXES):
                    st = entry.stat()
                    files.append((rel, st.st_size, st.st_mtime_ns))
                else:
                    ignored.append(rel)
            except OSError as e:  # a dangling link, a file removed while we look
                unreadable.append((rel, f"not readable ({e.strerror or e})"))
    return Listing(root, sorted(files), sorted(ignored), sorted(unreadable))


def labels_of(rels, mode, root):
    """(class names, a label per file) from first-level subfolders, or (None, None) for unlabeled data.

    auto: labeled when every image lies in one of at least two first-level subfolders; subfolders: always
    (an image outside them is an error); none: never.
    """
    tops = [rel.split("/", 1)[0] if "/" in rel else None for rel in rels]
    classes = sorted({t for t in tops if t is not None})
    outside = [rel for rel, top in zip(rels, tops) if top is None]
    if mode == "none" or (mode == "auto" and (outside or len(classes) < 2)):
        return None, None
    if outside:
        raise ConfigError(f"data.labels=subfolders, but {len(outside):,} image(s) lie directly in {root} (e.g. "
                          f"{outside[0]}), in no class subfolder; move them into one, or set data.labels=none")
    index = {name: i for i, name in enumerate(classes)}
    return classes, [index[t] for t in tops]


def _unit_hash(rel):
    """A number in [0, 1) fixed by the relative path alone: the same on every machine and in every run."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") / 2**64


def held_out(rels, fraction, cap=MAX_TEST):
    """Which files form the test split: those whose path hashes below `fraction`, so adding images never
    moves an old one. Past `cap` images only the `cap` lowest hashes are held out."""
    hashes = [_unit_hash(rel) for rel in rels]
    chosen = sorted((h, i) for i, h in enumerate(hashes) if h < fraction)[:cap]
    test = [False] * len(rels)
    for _, i in chosen:
        test[i] = True
    return test


def cache_key(listing, settings):
    h = hashlib.sha256(json.dumps([FORMAT, VERSION, settings.__dict__]).encode())
    for rel, size, mtime in listing.files:
        h.update(f"{rel}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------------------------------------------------
# The prepared set


class Prepared:
    """A prepared folder: the manifest and the uint8 array file beside it, training images first."""

    def __init__(self, manifest_path, source=None):
        self.manifest_path = Path(manifest_path)
        self.manifest = json.loads(self.manifest_path.read_text())
        self.source = str(source or self.manifest["source"])  # where the folder is now (it may have moved)
        self.array_path = self.manifest_path.with_suffix(".u8")
        self.shape = tuple(self.manifest["shape"])
        self.count, self.train_count = self.manifest["count"], self.manifest["train"]
        self.classes = self.manifest["classes"]

    @property
    def nbytes(self):
        return self.count * int(np.prod(self.shape))

    def split(self, train=True):
        """(uint8 (N, C, H, W) images memory-mapped from the file, int64 labels or None) of one split."""
        images = np.memmap(self.array_path, np.uint8, "c", shape=(self.count, *self.shape))  # "c": torch may wrap it
        part = slice(0, self.train_count) if train else slice(self.train_count, self.count)
        labels = self.manifest["labels"]
        return images[part], None if labels is None else np.asarray(labels[part], dtype=np.int64)

    def record(self):
        """What a checkpoint keeps so that resume and gan-eval find this set again, from any folder."""
        m = self.manifest
        return {"source": self.source, "manifest": str(self.manifest_path), "key": m["key"], "count": self.count,
                "train": self.train_count, "shape": list(self.shape)}

    def describe(self, placement=None):
        """The start-up block's lines about this set; `placement`: how training holds it."""
        m, size = self.manifest, "x".join(map(str, self.shape))
        lines = [f"data: folder {self.source}: {self.count:,} images of {size} ({self.train_count:,} to train on, "
                 f"{self.count - self.train_count:,} held out for evaluation)",
                 f"data: prepared copy {self.array_path} ({self.nbytes / 2**20:,.1f} MiB"
                 f"{', ' + placement if placement else ''})"]
        if self.classes:
            shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
            lines.append(f"data: {len(self.classes)} classes, one per subfolder: {shown}")
        if m["skipped"]:
            names = "; ".join(f"{rel}: {why}" for rel, why in m["skipped"][:5])
            lines.append(f"data: skipped {len(m['skipped']):,} file(s) that could not be used "
                         f"(all listed in {self.manifest_path}): {names}{'; ...' if len(m['skipped']) > 5 else ''}")
        if m["ignored"]:
            lines.append(f"data: ignored {len(m['ignored']):,} file(s) that are not images by their suffix: "
                         f"{', '.join(m['ignored'][:5])}{', ...' if len(m['ignored']) > 5 else ''}")
        return lines


def open_or_prepare(cfg_data, record=None):
    """The prepared set for a folder config: the checkpoint's own (`record`) while its files exist, else the one
    whose key matches the folder as it is now, prepared first if there is none."""
    if record and (prepared := _open(record["manifest"], record["source"])):
        return prepared
    root = source_folder(cfg_data, record)
    settings = settings_of(cfg_data)
    listing = scan(root)
    key = cache_key(listing, settings)
    cache = Path(str(cfg_data.cache_dir)).expanduser() / "folders"
    prepared = _open(cache / f"{key}.json", root)
    if prepared is None:
        with _locked(cache, key):  # several runs on one folder at once (torchrun ranks, a sweep): one prepares
            prepared = _open(cache / f"{key}.json", root)
            if prepared is None:
                prepare(listing, settings, key, cache)
                prepared = Prepared(cache / f"{key}.json", root)
    if record and record["key"] != key:
        log.warning("the prepared copy %s is gone and %s has changed since: continuing on the folder as it is now",
                    record["manifest"], root)
    return prepared


def _open(manifest_path, source):
    """The prepared set a manifest describes, or None where it or its array file is missing or incomplete."""
    try:
        prepared = Prepared(manifest_path, source)
        complete = prepared.array_path.stat().st_size == prepared.nbytes
    except (OSError, ValueError, KeyError):
        return None
    return prepared if complete else None


def source_folder(cfg_data, record=None):
    """data.path, or where a checkpoint's set came from when data.path is not given or not there."""
    if cfg_data.path:
        path = Path(str(cfg_data.path)).expanduser().resolve()
        if path.is_dir():
            return path
    if record and Path(record["source"]).is_dir():
        return Path(record["source"])
    if not cfg_data.path:
        raise ConfigError("data=folder needs data.path=<a folder of images>; e.g. data.path=~/faces")
    raise ConfigError(f"data.path={cfg_data.path} is not a folder; point it at the folder that holds your images")


@contextlib.contextmanager
def _locked(cache, key):
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / f"{key}.lock", "w")
    except OSError as e:
        raise EnvironmentProblem(f"cannot write the prepared data to {cache} ({e.strerror or e}); set "
                                 "GAN_CLI_CACHE (or data.cache_dir) to a folder you can write") from None
    with lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # waits while another process prepares the same folder
        except ImportError:  # pragma: no cover - Windows: no lock, so start concurrent runs one at a time
            pass
        yield


def prepare(listing, settings, key, cache):
    """Decode every image of `listing` into cache/<key>.u8 (training images, then held-out ones) and write the
    manifest cache/<key>.json; both appear whole or not at all."""
    rels = [rel for rel, _, _ in listing.files]
    classes, labels = labels_of(rels, settings.labels, listing.root)
    test = held_out(rels, settings.test_fraction)
    order = [i for i in range(len(rels)) if not test[i]] + [i for i in range(len(rels)) if test[i]]
    image_bytes = settings.channels * settings.image_size**2
    _check_space(cache, len(rels) * image_bytes, listing.root)
    array, tmp = cache / f"{key}.u8", cache / f".{key}.u8.tmp"
    kept, skipped = [], list(listing.unreadable)
    log.info("preparing %s: %d image files, on %d process(es), once", listing.root, len(rels), workers_for(len(rels)))
    try:
        results = contextlib.closing(decode_all([listing.root / rels[i] for i in order], settings))
        progress = Progress("auto", 0, len(order), "preparing", log)
        with open(tmp, "wb") as out, results as decoded:
            for done, (i, result) in enumerate(zip(order, decoded), 1):
                if isinstance(result, str):
                    skipped.append((rels[i], result))
                else:
                    out.write(result.tobytes())
                    kept.append(i)
                progress.step()
                if done % max(1, len(order) // 10) == 0:  # lines: about ten of them
                    progress.report(done, f"{len(skipped):,} skipped")
        progress.close()
        if not kept:
            raise DataError(f"no usable image in {listing.root} ({len(rels):,} image file(s), "
                            f"{len(listing.ignored):,} other file(s)); put .png, .jpg, .webp, .bmp, .gif or .tif "
                            "images there, in any subfolders")
        os.replace(tmp, array)
        manifest = {
            "format": FORMAT, "version": VERSION, "key": key, "source": str(listing.root),
            "settings": settings.__dict__, "shape": [settings.channels, settings.image_size, settings.image_size],
            "count": len(kept), "train": sum(not test[i] for i in kept), "classes": classes,
            "labels": None if labels is None else [labels[i] for i in kept], "files": [rels[i] for i in kept],
            "skipped": sorted(skipped), "ignored": listing.ignored,
        }
        _write_json(cache / f"{key}.json", manifest)
    except OSError as e:
        raise files.not_written(array, e.strerror or e, "free space there or set GAN_CLI_CACHE to another disk") from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("prepared %s: %d images used, %d skipped", listing.root, len(kept), len(skipped))


def _check_space(cache, needed, root):
    free = shutil.disk_usage(cache).free
    if free < needed:
        raise EnvironmentProblem(f"the prepared copy of {root} needs {needed / 2**20:,.0f} MiB and {cache} has "
                                 f"{free / 2**20:,.0f} MiB free; free space or set GAN_CLI_CACHE to another disk")


def _write_json(path, mapping):
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(mapping))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
