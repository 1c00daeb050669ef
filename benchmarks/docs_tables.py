"""Refresh the measured tables and plots in docs/ from what `make bench`, `make compare`, `make study` and
`make folder-scores` and `make study-augment` wrote under outputs/.

    python benchmarks/docs_tables.py        # make docs-tables

Each table sits in its page between `<!-- begin NAME -->` and `<!-- end NAME -->`; a source that has not been
produced yet leaves its table as it is.
"""

import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs"


def bench_table(result):
    rows = ["| case (model-size-batch) | tutorial-style loop img/s | gan-cli img/s | speed-up | peak MiB (loop / gan-cli) |",
            "|---|---|---|---|---|"]
    for r in result["rows"]:
        rows.append(f"| {r['case']} | {r['reference_img_s']:.0f} | {r['gan_cli_img_s']:.0f} | {r['speedup']:.2f}x "
                    f"| {r['reference_peak_mib']:.0f} / {r['gan_cli_peak_mib']:.0f} |")
    return f"{result['machine']}, torch {result['torch']}:\n\n" + "\n".join(rows)


def scaling_table(result):
    rows = ["| case | 1 process img/s | 2 processes img/s | speed-up |", "|---|---|---|---|"]
    rows += [f"| {r['case']} | {r['img_s_1']:.0f} | {r['img_s_2']:.0f} | {r['speedup']:.2f}x |" for r in result["rows"]]
    return f"{result['machine']}, torch {result['torch']}:\n\n" + "\n".join(rows)


def folder_table(result):
    rows = ["| case (model-size-batch) | ImageFolder + DataLoader img/s | data=folder img/s | data=mnist5k img/s "
            "| folder / in memory |", "|---|---|---|---|---|"]
    rows += [f"| {r['case']} | {r['imagefolder_img_s']:.0f} | {r['folder_img_s']:.0f} | {r['mnist5k_img_s']:.0f} "
             f"| {r['folder_vs_memory']:.2f}x |" for r in result["rows"]]
    return f"{result['machine']}, torch {result['torch']}:\n\n" + "\n".join(rows)


def folders_table(result):
    names = {"png-28": "28x28 greyscale PNGs", "jpeg-64": "64x64 RGB JPEGs"}
    rows = ["| folder | images | prepared | first run: prepare | later runs: open | processes |", "|---|---|---|---|---|---|"]
    rows += [f"| {names[name]} | {r['files']:,} | {r['mib']:,.0f} MiB | {r['first_s']:.1f} s | {r['again_s']:.2f} s "
             f"| {r['processes']} |" for name, r in result["prepare"].items()]
    rows += ["", "| DCGAN 64x64, batch 64, on the 100,000 JPEGs | img/s |", "|---|---|"]
    rows += [f"| prepared set {placement} | {speed:.0f} |" for placement, speed in result["train"].items()]
    return f"{result['machine']}, torch {result['torch']}:\n\n" + "\n".join(rows)


def replace_block(page, name, text):
    path = ROOT / "docs" / page
    pattern = re.compile(rf"(<!-- begin {name} -->\n).*?(\n<!-- end {name} -->)", re.S)
    old = path.read_text()
    if not pattern.search(old):
        raise SystemExit(f"docs_tables: docs/{page} has no <!-- begin {name} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text.strip() + m.group(2), old))
    print(f"refreshed {name} in docs/{page}")


def main():
    for name, source, render in (("bench", OUT / "bench/results.json", bench_table),
                                 ("scaling", OUT / "bench/scaling.json", scaling_table),
                                 ("folder", OUT / "bench/folder.json", folder_table),
                                 ("folders", OUT / "bench/folders.json", folders_table)):
        if source.is_file():
            replace_block("performance.md", name, render(json.loads(source.read_text())))
    if (OUT / "folder-scores/results.md").is_file():
        replace_block("quality.md", "folder_scores", (OUT / "folder-scores/results.md").read_text())
    for name, prefix, page in (("compare", "", "quality.md"), ("study", "study_", "quality.md"),
                               ("study-augment", "augment_", "augment.md")):  # the studies' plots get a prefix
        report = OUT / name / "report"
        if (report / "results.md").is_file():
            replace_block(page, name, (report / "results.md").read_text())
            for png in report.glob("*.png"):
                shutil.copy(png, ROOT / "docs" / "img" / f"{prefix}{png.name}")
                print(f"copied docs/img/{prefix}{png.name}")


if __name__ == "__main__":
    main()
