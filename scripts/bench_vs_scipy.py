#!/usr/bin/env python3
"""A drift report from files, side by side: driftgate, a scipy loop, NannyML and Evidently on the
same data, each timed as a whole process (start, reading the files, computing, exiting) with its
peak RSS, best of --repeat runs (interleaved: each round runs every command once).

Run from the repository root:
    python3 scripts/bench_vs_scipy.py                       # 50 features, 100,000 x 10,000 rows
    python3 scripts/bench_vs_scipy.py --reference-rows 1000000 --current-rows 100000 --repeat 1
    python3 scripts/bench_vs_scipy.py --numeric 1000 --categorical 0 --only-load
Needs numpy and GNU time (/usr/bin/time, Debian's `time` package), pandas + scipy for the scipy
loop, nannyml and evidently for theirs (a peer that does not import is reported as missing):
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install nannyml==0.13.* evidently==0.7.* \
        "pandas<2.2" && /tmp/peers/bin/python scripts/bench_vs_scipy.py
Builds driftgate in release mode first.

Data: --numeric normal features rounded to 6 decimals (every fifth shifted by 0.1 in the current
rows) and --categorical features of 5 to 30 levels with skewed frequencies (every third with its
frequencies perturbed in the current rows), written as CSV and as JSONL.

What each side computes per feature: the scipy loop runs ks_2samp, wasserstein_distance and
chi2_contingency (categorical); NannyML its UnivariateDriftCalculator (KS/chi2) on one chunk;
Evidently its DataDriftPreset; driftgate its default report (KS, Wasserstein, quantile-bin
distances, chi-square). "compute" is the time inside the process after the data was read,
reported by the Python workers themselves; for `baseline show`, the time loading the baseline.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(args, out_dir):
    import numpy as np

    rng = np.random.default_rng(7)
    numeric = [f"n{j:03d}" for j in range(args.numeric)]
    categorical = [f"c{j:02d}" for j in range(args.categorical)]

    def rows(n, current):
        cols = {}
        for j, name in enumerate(numeric):
            shift = 0.1 if current and j % 5 == 0 else 0.0
            cols[name] = np.round(rng.normal(shift, 1.0, n), 6)
        for j, name in enumerate(categorical):
            levels = 5 + (j * 7) % 26
            weights = 1.0 / np.arange(1, levels + 1)
            if current and j % 3 == 0:
                weights = weights[::-1]
            weights /= weights.sum()
            cols[name] = rng.choice([f"L{k}" for k in range(levels)], size=n, p=weights)
        return cols

    paths = {}
    for kind, n in (("ref", args.reference_rows), ("cur", args.current_rows)):
        cols = rows(n, kind == "cur")
        names = numeric + categorical
        text_cols = [np.char.mod("%.6f", cols[c]) if c in numeric else cols[c] for c in names]
        csv_path = os.path.join(out_dir, f"{kind}.csv")
        with open(csv_path, "w") as f:
            f.write(",".join(names) + "\n")
            for i in range(0, n, 10_000):
                block = [col[i:i + 10_000] for col in text_cols]
                f.write("\n".join(",".join(r) for r in zip(*block)) + "\n")
        jsonl_path = os.path.join(out_dir, f"{kind}.jsonl")
        with open(jsonl_path, "w") as f:
            for i in range(0, n, 10_000):
                block = [col[i:i + 10_000] for col in text_cols]
                lines = []
                for r in zip(*block):
                    fields = [f'"{c}":{v}' if c in numeric else f'"{c}":"{v}"'
                              for c, v in zip(names, r)]
                    lines.append("{" + ",".join(fields) + "}")
                f.write("\n".join(lines) + "\n")
        paths[kind] = (csv_path, jsonl_path)
    return paths


def run_measured(cmd):
    """Runs cmd under GNU time; returns (seconds, peak RSS in MB, stdout). (A child's own
    rusage would start from this interpreter's size at the fork.)"""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.decode()[-2000:]}")
        peak_kb = int(rss.read().split()[-1])
    return elapsed, peak_kb / 1024, proc.stdout


def best_of_rounds(repeat, cmds):
    """The fastest of `repeat` runs of each (key, cmd), the runs interleaved: each round runs
    every command once, so a slow spell of a shared machine falls on all commands alike
    instead of on one command's runs. A command that fails is dropped, its error kept."""
    best, failed = {}, {}
    for _ in range(repeat):
        for key, cmd in cmds:
            if key in failed:
                continue
            try:
                run = run_measured(cmd)
            except RuntimeError as err:
                failed[key] = err
                continue
            if key not in best or run[0] < best[key][0]:
                best[key] = run
    return best, failed


# --- the Python workers, each run as its own process -------------------------------------

def worker(tool, ref_csv, cur_csv):
    import pandas as pd

    ref, cur = pd.read_csv(ref_csv), pd.read_csv(cur_csv)
    numeric = [c for c in ref.columns if c.startswith("n")]
    categorical = [c for c in ref.columns if c.startswith("c")]
    start = time.perf_counter()
    if tool == "scipy":
        import numpy as np
        from scipy import stats

        for c in numeric:
            r, k = ref[c].to_numpy(), cur[c].to_numpy()
            stats.ks_2samp(r, k)
            stats.wasserstein_distance(r, k)
        for c in categorical:
            counts = pd.concat([ref[c].value_counts(), cur[c].value_counts()], axis=1).fillna(0)
            stats.chi2_contingency(np.asarray(counts).T)
    elif tool == "nannyml":
        import nannyml

        calc = nannyml.UnivariateDriftCalculator(
            column_names=numeric + categorical, chunk_number=1,
            continuous_methods=["kolmogorov_smirnov"], categorical_methods=["chi2"])
        calc.fit(ref)
        calc.calculate(cur)
    elif tool == "evidently":
        from evidently import Report
        from evidently.presets import DataDriftPreset

        Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    print(json.dumps({"compute": time.perf_counter() - start}))


def python_side(args, tool, ref_csv, cur_csv):
    """The command that runs `tool`'s side as a process of its own."""
    return [args.python, os.path.abspath(__file__), "--worker", tool, ref_csv, cur_csv]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numeric", type=int, default=40)
    parser.add_argument("--categorical", type=int, default=10)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter with scipy/nannyml/evidently")
    parser.add_argument("--peers", default="scipy,nannyml,evidently")
    parser.add_argument("--only-load", action="store_true",
                        help="only time loading a baseline (baseline show) in each layout")
    parser.add_argument("--data", help="keep the generated files in this directory")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "driftgate")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.data or tmp
        os.makedirs(out_dir, exist_ok=True)
        paths = generate(args, out_dir)
        (ref_csv, ref_jsonl), (cur_csv, cur_jsonl) = paths["ref"], paths["cur"]
        npz, json_baseline = os.path.join(out_dir, "b.npz"), os.path.join(out_dir, "b.json")
        for output in (npz, json_baseline):
            subprocess.run([binary, "baseline", "build", "--input", ref_csv, "--output", output],
                           check=True, stdout=subprocess.DEVNULL)
        shape = (f"{args.numeric} numeric + {args.categorical} categorical features, "
                 f"{args.reference_rows:,} x {args.current_rows:,} rows, best of {args.repeat}")
        print(shape)
        cmds = [(("show", name, path), [binary, "baseline", "show", path])
                for name, path in (("NPZ", npz), ("JSON", json_baseline))]
        if not args.only_load:
            def drift(reference, current):
                return [binary, "drift", "--reference", reference, "--current", current,
                        "--format", "json"]
            cmds += [(("drift", label), cmd) for label, cmd in (
                ("driftgate drift, raw CSV", drift(ref_csv, cur_csv)),
                ("driftgate drift, raw JSONL", drift(ref_jsonl, cur_jsonl)),
                ("driftgate drift, NPZ baseline + CSV", drift(npz, cur_csv)),
                ("driftgate drift, JSON baseline + CSV", drift(json_baseline, cur_csv)))]
            cmds += [(("peer", tool), python_side(args, tool, ref_csv, cur_csv))
                     for tool in filter(None, args.peers.split(","))]
        best, failed = best_of_rounds(args.repeat, cmds)
        for (_, tool), err in failed.items():
            print(f"  {tool}: not measured ({str(err).strip().splitlines()[-1]})", file=sys.stderr)
        rows = []
        for key, _ in cmds:
            if key not in best:
                continue
            seconds, rss, out = best[key]
            if key[0] == "show":
                size = os.path.getsize(key[2]) / 1e6
                loaded = float(out.decode().split("loaded in ")[1].split(" ms")[0]) / 1000
                rows.append((f"driftgate baseline show, {key[1]} ({size:.0f} MB): load, "
                             "then verify id", seconds, loaded, rss))
            elif key[0] == "drift":
                rows.append((key[1], seconds, None, rss))
            else:
                compute = json.loads(out)["compute"]
                rows.append((f"{key[1]} (pandas.read_csv)", seconds, compute, rss))
    print(f"| | whole process | compute only | peak RSS |")
    print(f"|---|---|---|---|")
    for label, seconds, compute, rss in rows:
        compute = f"{compute:.3f} s" if compute is not None else ""
        print(f"| {label} | {seconds:.3f} s | {compute} | {rss:.0f} MB |")


if __name__ == "__main__":
    sys.exit(main())
