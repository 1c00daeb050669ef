"""What a run shows: TensorBoard scalars, image grids, config text and hparams, plus grid PNGs on disk."""

import contextlib
from pathlib import Path

import torch


def signed_to_unit(images):
    """[-1, 1] (G's range) -> [0, 1] (an image file's), for viewing."""
    return images.detach().float().cpu().add(1).div(2).clamp(0, 1)


def tile(images, nrow=8, padding=2):
    """(N, C, H, W) -> one (C, H', W') image: rows of nrow images on a black grid `padding` pixels wide, as
    torchvision's make_grid lays them out. Written here because importing torchvision costs gan-sample 1.8 s."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    canvas = images.new_zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        canvas[:, y:y + h, x:x + w] = image
    return canvas


def pil_image(image):
    """(C, H, W) in [0, 1] -> an 8-bit PIL image (grey for one channel)."""
    from PIL import Image

    array = image.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def save_png(image, path):
    """Written whole or not at all (files.atomic): a full disk leaves no half PNG."""
    from gan_cli import files

    with files.atomic(path) as tmp:
        pil_image(image).save(tmp, format="PNG")


def labelled(image, text, height=18):
    """A PIL image with a black strip above it holding `text` in white."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new(image.mode, (image.width, image.height + height))
    ImageDraw.Draw(canvas).text((4, 2), text, fill="white", font=ImageFont.load_default(size=height - 4))
    canvas.paste(image, (0, height))  # after the text: a descender reaching below the strip is covered
    return canvas


def save_gif(frames, path, duration):
    """PIL images as an animated GIF that loops, `duration` ms a frame (or a list, one per frame); written whole
    or not at all."""
    from gan_cli import files

    with files.atomic(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)


def scatter_figure(fake, real, title):
    """2-D samples (orange) over the real data (blue)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    for points, colour, label in ((real, "tab:blue", "real"), (fake, "tab:orange", "G(z)")):
        p = points.detach().float().cpu().view(-1, 2)
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5, c=colour, label=label)
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", title=title)
    ax.legend(loc="upper right", markerscale=4, fontsize=7)
    return fig


def scatter_png(path, fake, real, title):
    import matplotlib.pyplot as plt

    from gan_cli import files

    fig = scatter_figure(fake, real, title)
    with files.atomic(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def events_folder(run_dir):
    """Where a run's TensorBoard events are: tb/<run name>/, or tb/ itself for a run saved before runs had names."""
    tb = Path(run_dir) / "tb"
    named = [p for p in tb.iterdir() if p.is_dir()] if tb.is_dir() else []
    return named[0] if len(named) == 1 else tb


class Board:
    """A run's TensorBoard writer and its grid PNGs. An error of the writer (whose thread hands it to the next
    call) names the events folder, so that a full disk is reported with the right path."""

    def __init__(self, run_dir, name="", purge_step=None):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard takes a second to import: only when writing

        self.run_dir = Path(run_dir)
        # The events go to tb/<name>/: `tensorboard --logdir outputs/` lists the run by its name, not as "tb".
        # purge_step drops events a killed run logged after its last checkpoint: no duplicated steps on resume.
        self.folder = self.run_dir / "tb" / name
        with self._events():
            self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step)

    @contextlib.contextmanager
    def _events(self):
        try:
            yield
        except OSError as e:
            e.filename = e.filename or str(self.folder)
            raise

    def scalars(self, values, step):
        with self._events():
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def grid(self, tag, images, step, png_name=None, nrow=8):
        grid = tile(signed_to_unit(images), nrow)
        with self._events():
            self.writer.add_image(tag, grid, step)
        if png_name:
            (self.run_dir / "samples").mkdir(exist_ok=True)
            save_png(grid, self.run_dir / "samples" / png_name)

    def scatter(self, tag, fake, real, step, png_name=None):
        """2-D samples over the real data, as a TensorBoard image and a PNG."""
        from gan_cli import files

        fig = scatter_figure(fake, real, f"step {step}")
        if png_name:
            (self.run_dir / "samples").mkdir(exist_ok=True)
            with files.atomic(self.run_dir / "samples" / png_name) as tmp:
                fig.savefig(tmp, format="png")
        with self._events():
            self.writer.add_figure(tag, fig, step)  # closes the figure

    def histogram(self, tag, values, step):
        with self._events():
            self.writer.add_histogram(tag, values.detach().float().cpu(), step)

    def layout(self, layout):
        """A custom-scalars dashboard (dashboard.layout), written once per run."""
        with self._events():
            self.writer.add_custom_scalars(layout)

    def text(self, tag, text):
        # Indented by four spaces, TensorBoard's markdown shows it verbatim.
        with self._events():
            self.writer.add_text(tag, "\n".join("    " + line for line in text.splitlines()), 0)

    def hparams(self, hparams, metrics, step):
        with self._events():
            self.writer.add_hparams(hparams, metrics, run_name=".", global_step=step)

    def close(self):
        with self._events():
            self.writer.close()


@torch.no_grad()
def generate(G, z, y=None, batch=256):
    """G's output for z (and labels y, for a conditional G) in eval mode (batch norm on running statistics),
    so each image depends on its own inputs only."""
    from gan_cli.models import call

    was_training = G.training
    G.eval()
    try:
        chunks = z.split(batch)
        labels = y.to(z.device).split(batch) if y is not None else [None] * len(chunks)
        return torch.cat([call(G, chunk, y_chunk) for chunk, y_chunk in zip(chunks, labels)])
    finally:
        G.train(was_training)
