"""make folder-scores: does the offline score of an image folder (random-network features, gan_cli/random_features.py)
rank checkpoints as the domain classifier's FD does? mnist5k's 4,500 training digits are saved as a folder of
PNGs, the default DCGAN trains on it with a checkpoint every 250 steps, and each checkpoint is scored both ways:
against the folder's held-out digits in random features, and against mnist5k's test split in the features of
the classifier trained on mnist5k.

    python benchmarks/folder_scores.py --out outputs/folder-scores     # about 10 minutes on 2 CPU cores
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from bench import _machine, write_digit_folder

STEPS, EVERY = 3000, 250
SHOWN = (250, 1000, 3000)


def spearman(a, b):
    """Rank correlation of two equally long lists (no ties expected)."""
    def ranks(x):
        order = sorted(range(len(x)), key=x.__getitem__)
        r = [0] * len(x)
        for rank, i in enumerate(order):
            r[i] = rank
        return r

    ra, rb, n = ranks(a), ranks(b), len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/folder-scores"))
    p.add_argument("--n", type=int, default=5000, help="generated samples per checkpoint")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from hydra import compose, initialize_config_module

    from gan_cli import checkpoint, data, evaluate
    from gan_cli.sample import generator_from
    from gan_cli.train import train

    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "run"
    with tempfile.TemporaryDirectory() as tmp:
        digits, cache = Path(tmp) / "digits", str(Path(tmp) / "cache")
        write_digit_folder(digits)
        over = ["data=folder", f"data.path={digits}", f"data.cache_dir={cache}", "data.channels=1",
                "data.image_size=28", f"trainer.steps={STEPS}", f"trainer.ckpt_every={EVERY}",
                f"trainer.keep_last={STEPS // EVERY}", f"seed={args.seed}", "device=cpu"]
        tic = time.perf_counter()
        with initialize_config_module("gan_cli.configs", version_base="1.3"):
            train(compose("train", overrides=over), run, over)
        train_s = time.perf_counter() - tic
        cpu = torch.device("cpu")
        ckpts = [checkpoint.load(run / "checkpoints" / checkpoint.step_name(s)) for s in range(EVERY, STEPS + 1, EVERY)]
        mnist5k = OmegaConf.create({"name": "mnist5k", "image_size": 28, "channels": 1})
        cache_dir = os.environ.get("GAN_CLI_CACHE", "~/.cache/gan-cli")
        by_classifier = evaluate.Evaluator(mnist5k, cpu, args.n, args.seed, cache_dir)
        by_folder = evaluate.FolderEvaluator(data.config_from(ckpts[0]["config"]["data"]), cpu, args.n, args.seed,
                                             record=ckpts[0]["dataset"])
        rows = []
        for ckpt in ckpts:
            G, latent_dim = generator_from(ckpt, cpu)
            f, c = by_folder(G, latent_dim), by_classifier(G, latent_dim)
            rows.append({"step": ckpt["step"], **{k: f[k] for k in ("fd_random_embed", "kid_random_embed",
                                                                    "precision_random_embed", "recall_random_embed",
                                                                    "coverage_random_embed")},
                         "fd_classifier": c["fd_classifier"], "inception_score": c["inception_score"]})
            print(rows[-1], flush=True)
        held_out = len(by_folder.real)
    result = {"machine": _machine("cpu"), "torch": torch.__version__, "n": args.n, "seed": args.seed,
              "held_out": held_out, "train_s": train_s, "rows": rows,
              "spearman_fd": spearman([r["fd_random_embed"] for r in rows], [r["fd_classifier"] for r in rows]),
              "spearman_kid": spearman([r["kid_random_embed"] for r in rows], [r["fd_classifier"] for r in rows])}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(table(result) + "\n")
    print(table(result))


def table(result):
    head = ["| step | FD, random features (folder) | KID, random features | coverage, random features "
            "| FD, domain classifier (mnist5k test) | inception score |", "|---|---|---|---|---|---|"]
    rows = [f"| {r['step']:,} | {r['fd_random_embed']:.2f} | {r['kid_random_embed']:.4f} | "
            f"{r['coverage_random_embed']:.2f} | {r['fd_classifier']:.1f} | {r['inception_score']:.2f} |"
            for r in result["rows"] if r["step"] in SHOWN]
    return (f"{result['machine']}, torch {result['torch']}; {result['n']:,} samples per checkpoint, "
            f"{result['held_out']} held-out digits in the folder:\n\n" + "\n".join(head + rows) +
            f"\n\nOver all {len(result['rows'])} checkpoints (every {EVERY} steps), Spearman's rank correlation with "
            f"the classifier FD: {result['spearman_fd']:.2f} (FD on random features), "
            f"{result['spearman_kid']:.2f} (KID on random features).")


if __name__ == "__main__":
    main()
