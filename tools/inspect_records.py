#!/usr/bin/env python
"""Print per-split track counts and per-tag counts read back from converted TFRecords.

Usage:
    python tools/inspect_records.py records/jamendo-mel          # table
    python tools/inspect_records.py records/jamendo-mel --json   # machine-readable

Compare with the split TSVs (e.g. 9,949 / 3,802 / 4,231 tracks for split-0) to check a conversion.
"""

import argparse
import json
import sys

from tfmood.data import convert
from tfmood.data.inspect import inspect_records


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records_dir")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    try:
        stats = inspect_records(args.records_dir)
    except (OSError, convert.DamagedRecords) as e:  # no/unfinished/broken manifest, missing or corrupted shard
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    for split, s in stats.items():
        print(f"{split}: {s['tracks']} tracks ({s['unique_tracks']} unique), {s['frames']} frames")
        top = sorted(s["tag_counts"].items(), key=lambda kv: -kv[1])
        print("  " + ", ".join(f"{t} {n}" for t, n in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
