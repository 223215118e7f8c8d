#!/usr/bin/env python3
"""Mean ± std over seeds of the rl grids' evaluations (tools/experiments.sh rl rl-memory).

    python3 tools/rl_summary.py runs/exp/dk-* runs/exp/mem-*

Each run directory NAME-sS holds eval.jsonl (one `rims rl eval --json` object per test world)
and its checkpoint's progress (rl.json: frames and wall time). Runs are grouped by NAME; the
table gives, per world, the success rate and the mean return as mean ± std (sample std, n-1)
over the seeds, then the training frames per second.
"""

import argparse
import collections
import json
import pathlib
import re
import statistics
import sys


def mean_std(values):
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def run_state(run):
    latest = (run / "latest").read_text().strip()
    return json.loads((run / latest / "rl.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="run directories NAME-sS")
    args = parser.parse_args()
    groups = collections.defaultdict(list)
    for run in args.runs:
        m = re.fullmatch(r"(.+)-s(\d+)", run.name)
        if not m or not (run / "eval.jsonl").is_file():
            print(f"skipping {run}: not NAME-sS with an eval.jsonl", file=sys.stderr)
            continue
        evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines() if line]
        groups[m.group(1)].append((int(m.group(2)), evals, run_state(run)))
    for name, seeds in sorted(groups.items()):
        seeds.sort(key=lambda s: s[0])
        worlds = [e["env"] for e in seeds[0][1]]
        print(f"{name} (seeds {', '.join(str(s[0]) for s in seeds)})")
        print(f"  {'world':<16} {'success':<16} {'mean return':<16} {'mean length'}")
        for w in worlds:
            rows = [e for s in seeds for e in s[1] if e["env"] == w]
            print(
                f"  {w:<16} {mean_std([r['success_rate'] for r in rows]):<16} "
                f"{mean_std([r['mean_return'] for r in rows]):<16} "
                f"{mean_std([r['mean_length'] for r in rows])}"
            )
        fps = [s[2]["progress"]["frames"] / s[2]["progress"]["seconds"] for s in seeds]
        print(f"  training: {seeds[0][2]['progress']['frames']} frames, {mean_std(fps)} frames/s\n")


if __name__ == "__main__":
    main()
