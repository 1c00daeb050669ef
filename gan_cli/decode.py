"""Decoding one image file as gan-cli trains on it, on every core: whatever a user's folder holds (modes,
transparency, EXIF orientation, 16-bit greyscale, broken files), as uint8 (C, H, W) at the configured size,
or the reason it cannot be used. folder.py prepares whole folders with it."""

import os
from dataclasses import dataclass

import numpy as np

from gan_cli.errors import ConfigError

PARALLEL_FROM = 512  # fewer files are decoded in this process: starting workers would cost more


@dataclass(frozen=True)
class Settings:
    """How every image is prepared; part of the cache key."""

    image_size: int
    channels: int
    crop: str
    background: tuple
    min_size: int
    labels: str
    test_fraction: float


def settings_of(cfg_data):
    from PIL import ImageColor

    try:
        background = ImageColor.getrgb(str(cfg_data.background))[:3]
    except ValueError:
        raise ConfigError(f"data.background={cfg_data.background!r} is not a colour; e.g. white, black or "
                          "'#808080'") from None
    return Settings(cfg_data.image_size, cfg_data.channels, cfg_data.crop, background, cfg_data.min_size,
                    cfg_data.labels, float(cfg_data.test_fraction))




def decode(path, settings):
    """One file as a uint8 (C, H, W) array, prepared by `settings`; or, if it cannot be used, why not."""
    from PIL import Image, ImageOps

    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            w, h = image.size
            if min(w, h) < settings.min_size:
                return f"too small ({w}x{h} pixels; data.min_size={settings.min_size})"
            scale = settings.image_size / (min(w, h) if settings.crop == "center" else max(w, h))
            image.draft(image.mode, (int(w * scale) + 1, int(h * scale) + 1))  # JPEG: decode at a smaller scale
            image = ImageOps.exif_transpose(image)  # photos: upright, as a viewer shows them
            image = _fit(_flatten(image, settings), settings)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as e:  # any file a user has, any way it is broken: skipped, never fatal
        return _why(e)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def _flatten(image, settings):
    """8-bit greyscale or RGB, transparency composited onto the background colour."""
    from PIL import Image

    if image.mode.startswith("I;16"):  # 16-bit greyscale: keep the top 8 bits
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    elif image.mode in ("I", "F"):  # 32-bit greyscale: 16-bit values if any exceeds 8 bits
        a = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(a / 257 if a.max() > 255 else a, 0, 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*settings.background, 255)), rgba)
    return image.convert("L" if settings.channels == 1 else "RGB")


def _fit(image, settings):
    """crop=center: the shorter side to image_size, the middle kept; crop=pad: the whole picture, the longer side
    to image_size, centred on the background colour. Downscaling is antialiased (Lanczos)."""
    from PIL import Image

    size, (w, h) = settings.image_size, image.size
    if settings.crop == "center":
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        if (w, h) == (size, size):
            return image
        return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    scale = size / max(w, h)
    fitted = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS,
                          reducing_gap=3.0)
    fill = settings.background if image.mode == "RGB" else round(np.dot(settings.background, (0.299, 0.587, 0.114)))
    canvas = Image.new(image.mode, (size, size), fill)
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


def _why(error):
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image that Pillow can read"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "truncated" in text:
        return "truncated" + ("" if text == "image file is truncated" else f" ({text})")
    return f"unreadable ({type(error).__name__}{': ' + text[:120] if text else ''})"


def _decode_one(task):
    path, settings = task
    return decode(path, settings)


def _ignore_ctrl_c():
    """In a worker: Ctrl-C is the parent's to handle (it stops the pool), not a traceback per worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def workers_for(n):
    """Processes to decode n files: every core this process may use, or just this one for a few files."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if n < PARALLEL_FROM else max(1, cores or 1)


def decode_all(paths, settings):
    """decode() of every path, in order."""
    tasks = ((str(p), settings) for p in paths)
    workers = workers_for(len(paths))
    if workers == 1:
        yield from map(_decode_one, tasks)
        return
    import multiprocessing

    with multiprocessing.Pool(workers, _ignore_ctrl_c) as pool:  # its exit terminates the workers, also on Ctrl-C
        yield from pool.imap(_decode_one, tasks, chunksize=64)
