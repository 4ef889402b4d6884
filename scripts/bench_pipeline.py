#!/usr/bin/env python3
"""Pipeline throughput without a broker: 1,000,000 records (10,000 messages of 100 records, 10
numeric and 2 categorical features) through driftgate's decode -> window -> detect, beside
serde_json alone (parsing into Value, and checking syntax only), and beside a Python script
doing the straightforward thing (json.loads per message, scipy per window). Prints records/s,
the ratios and peak memory.

Run from the repository root:  python3 scripts/bench_pipeline.py [--messages N]
Needs numpy and scipy; builds the Rust example in release mode.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERIC = [f"n{i}" for i in range(10)]
CATEGORICAL = ["c0", "c1"]
LABELS = ["a", "b", "c", "d", "e"]


def write_messages(path, messages, rng):
    with open(path, "w") as f:
        for m in range(messages):
            shift = 0.3 if m >= messages // 2 else 0.0
            nums = rng.normal(shift, 1.0, (100, len(NUMERIC)))
            cats = rng.integers(0, len(LABELS), (100, len(CATEGORICAL)))
            records = []
            for r in range(100):
                rec = {k: round(float(nums[r, i]), 6) for i, k in enumerate(NUMERIC)}
                rec.update({k: LABELS[cats[r, i]] for i, k in enumerate(CATEGORICAL)})
                records.append(rec)
            f.write(json.dumps({"records": records}) + "\n")


def python_pipeline(path, reference, window):
    """json.loads per message, scipy per feature per window."""
    ref_num = {k: np.asarray(reference[k]) for k in NUMERIC}
    ref_cat = {k: reference[k] for k in CATEGORICAL}
    buffer, records, windows = [], 0, 0
    with open(path) as f:
        for line in f:
            batch = json.loads(line)["records"]
            buffer.extend(batch)
            records += len(batch)
            while len(buffer) >= window:
                current, buffer = buffer[:window], buffer[window:]
                for k in NUMERIC:
                    stats.ks_2samp(ref_num[k], np.array([r[k] for r in current]))
                for k in CATEGORICAL:
                    labels = sorted(set(ref_cat[k]) | {r[k] for r in current})
                    table = [[ref_cat[k].count(l) for l in labels],
                             [sum(1 for r in current if r[k] == l) for l in labels]]
                    stats.chi2_contingency(table, correction=False)
                windows += 1
    return records, windows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=2000)
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "pipeline_throughput"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    example = os.path.join(ROOT, "target", "release", "examples", "pipeline_throughput")
    binary = os.path.join(ROOT, "target", "release", "driftgate")
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        messages = os.path.join(tmp, "messages.jsonl")
        write_messages(messages, args.messages, rng)
        train = os.path.join(tmp, "train.jsonl")
        reference = {k: rng.normal(0, 1, 20000).round(6).tolist() for k in NUMERIC}
        reference.update({k: [LABELS[i] for i in rng.integers(0, 5, 20000)] for k in CATEGORICAL})
        with open(train, "w") as f:
            for i in range(20000):
                f.write(json.dumps({k: reference[k][i] for k in NUMERIC + CATEGORICAL}) + "\n")
        baseline = os.path.join(tmp, "baseline.json")
        subprocess.run([binary, "baseline", "build", "--input", train, "--output", baseline],
                       check=True, stdout=subprocess.DEVNULL)

        out = subprocess.run([example, messages, baseline, str(args.window)],
                             check=True, capture_output=True, text=True).stdout
        rust = json.loads(out)
        start = time.perf_counter()
        py_records, py_windows = python_pipeline(messages, reference, args.window)
        py_seconds = time.perf_counter() - start
        py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    py_rate = py_records / py_seconds
    print(f"{rust['records']:,} records in {rust['messages']:,} messages, windows of {args.window}: "
          f"{rust['windows']} windows")
    print(f"  serde_json parse (Value)   {rust['parse_only_records_per_second']:12,.0f} records/s")
    print(f"  serde_json syntax only     {rust['syntax_only_records_per_second']:12,.0f} records/s")
    print(f"  driftgate pipeline         {rust['pipeline_records_per_second']:12,.0f} records/s"
          f"   {rust['pipeline_seconds'] / rust['parse_only_seconds']:.2f}x parse time,"
          f" {rust['pipeline_seconds'] / rust['syntax_only_seconds']:.2f}x syntax-only time"
          f"   peak RSS {rust['peak_rss_mib']:.0f} MiB")
    print(f"  Python json.loads + scipy  {py_rate:12,.0f} records/s"
          f"   driftgate is {rust['pipeline_records_per_second'] / py_rate:.0f}x faster"
          f"   peak RSS {py_rss:.0f} MiB")
    assert py_records == rust["records"] and py_windows == rust["windows"]


if __name__ == "__main__":
    sys.exit(main())
