#!/usr/bin/env python3
"""Time a 50-feature drift report (100,000 reference x 10,000 current rows): driftgate against a
scipy loop on the same data, and print the ratio.

Run from the repository root:  python3 scripts/bench_vs_scipy.py
Needs numpy and scipy, and builds driftgate in release mode first.

The scipy side is timed on arrays already in memory (loading excluded), computing what one
driftgate report holds per feature: ks_2samp, wasserstein_distance, quantile bins, and Jensen-
Shannon, PSI and Hellinger over them. The driftgate side is timed end to end as a user runs it,
process start and CSV parsing included: once with the raw reference file, once with a baseline
profile built beforehand (the production path: the reference is profiled at training time).
Each side is timed best of --repeat runs.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quantile_edges(ref_sorted, k=10):
    n = len(ref_sorted)
    idx = (np.arange(k + 1) * (n - 1)) // k
    return np.unique(ref_sorted[idx])


def binned(ref, cur, edges):
    interior = max(len(edges) - 1, 1)

    def hist(x):
        slot = np.searchsorted(edges, x, side="right")
        slot = np.minimum(slot, interior)
        slot[x < edges[0]] = 0
        slot[x > edges[-1]] = interior + 1
        return np.bincount(slot, minlength=interior + 2).astype(float)

    r, c = hist(ref), hist(cur)
    p, q = r / r.sum(), c / c.sum()
    js = jensenshannon(r, c, base=2)
    p0, q0 = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    psi = np.sum((q0 - p0) * np.log(q0 / p0))
    hellinger = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2)
    return js, psi, hellinger


def scipy_report(ref, cur):
    out = []
    for j in range(ref.shape[1]):
        r, c = ref[:, j], cur[:, j]
        ks = stats.ks_2samp(r, c)
        w = stats.wasserstein_distance(r, c)
        normed = w / max(np.std(r), 0.001)
        edges = quantile_edges(np.sort(r))
        out.append((ks.statistic, ks.pvalue, w, normed) + binned(r, c, edges))
    return out


def best_of(repeat, fn):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def write_csv(path, data):
    header = ",".join(f"f{j:02d}" for j in range(data.shape[1]))
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.6f")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--numeric-method", default="ks",
                        help="driftgate's decision method for numeric features (e.g. wasserstein, "
                             "whose permutation test the scipy loop does not run)")
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "driftgate")

    rng = np.random.default_rng(7)
    ref = np.round(rng.normal(0, 1, (args.reference_rows, args.features)), 6)
    cur = np.round(rng.normal(0, 1, (args.current_rows, args.features)), 6)
    cur[:, ::5] += 0.1  # drift in every fifth feature

    with tempfile.TemporaryDirectory() as tmp:
        ref_csv, cur_csv = os.path.join(tmp, "reference.csv"), os.path.join(tmp, "current.csv")
        baseline = os.path.join(tmp, "baseline.json")
        write_csv(ref_csv, ref)
        write_csv(cur_csv, cur)
        subprocess.run([binary, "baseline", "build", "--input", ref_csv, "--output", baseline],
                       check=True, stdout=subprocess.DEVNULL)

        def driftgate(reference):
            subprocess.run([binary, "drift", "--reference", reference, "--current", cur_csv,
                            "--numeric-method", args.numeric_method, "--format", "json"],
                           check=True, stdout=subprocess.DEVNULL)

        t_scipy = best_of(args.repeat, lambda: scipy_report(ref, cur))
        t_raw = best_of(args.repeat, lambda: driftgate(ref_csv))
        t_baseline = best_of(args.repeat, lambda: driftgate(baseline))

    shape = f"{args.features} features, {args.reference_rows:,} x {args.current_rows:,} rows"
    print(f"{shape}, best of {args.repeat}")
    print(f"  scipy loop (data in memory)                     {t_scipy * 1000:9.1f} ms")
    print(f"  driftgate drift, raw CSV reference (end to end) {t_raw * 1000:9.1f} ms"
          f"   {t_scipy / t_raw:5.1f}x faster")
    print(f"  driftgate drift, baseline profile (end to end)  {t_baseline * 1000:9.1f} ms"
          f"   {t_scipy / t_baseline:5.1f}x faster")


if __name__ == "__main__":
    sys.exit(main())
