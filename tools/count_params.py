"""Regenerate the parameter table of docs/models.md from the registry (never hand-type it).

    python tools/count_params.py                      # rewrite the table in docs/models.md
    python tools/count_params.py --models cp_resnet,crnn --stdout

The table sits between the `<!-- params:start -->` and `<!-- params:end -->` markers; the rest of the file is kept.
"""

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from tfmood import models
from tfmood.models.inventory import imagenet_count, seed_count

START, END = "<!-- params:start -->", "<!-- params:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def millions(n):
    return f"{n / 1e6:.2f} M"


def table(names) -> str:
    rows = ["| model | seed system | seed input (bands x frames) | params (trainable / total) | "
            "ImageNet classifier, ours | published | reference |", "|---|---|---|---|---|---|---|"]
    for name in tqdm(names, desc="counting", unit="model"):
        try:
            seed = seed_count(name)
            reference = imagenet_count(name)
        except Exception as error:  # a model that cannot be built is reported, not dropped
            rows.append(f"| `{name}` | build failed: {type(error).__name__}: {error} | | | | | |")
            continue
        ours, published, source = (f"{reference[0]:,}", reference[1], reference[2]) \
            if reference else ("—", "—", "—")
        rows.append(f"| `{name}` | {seed['seed']} | {seed['input']} | {millions(seed['trainable'])} / "
                    f"{millions(seed['total'])} | {ours} | {published} | {source} |")
    return "\n".join(rows)


def write_table(text, path=DOC):
    doc = path.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{path} has no {START} ... {END} markers to replace.")
    head, rest = doc.split(START, 1)
    updated = f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(updated)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names (default: every registered model)")
    parser.add_argument("--stdout", action="store_true", help="print the table instead of rewriting docs/models.md")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else models.names()
    unknown = [n for n in names if n not in models.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(models.names())}")
    text = table(names)
    print(text) if args.stdout else write_table(text)


if __name__ == "__main__":
    sys.exit(main())
