#!/usr/bin/env python3
"""Generate the scipy reference fixtures that pin driftgate's statistics.

Run from the repository root:  python3 scripts/gen_fixtures.py
Needs numpy and scipy (pip install numpy scipy). Writes:

  tests/fixtures/scipy_stats.json   numeric and categorical cases: data and every statistic
  tests/fixtures/kolmogorov.json    kstwo.sf and smirnov over a grid covering every algorithm
  tests/fixtures/data/*             small data files (JSONL, CSV, with missing values and NaN)
                                    and the statistics scipy gives on their usable values

Binning follows docs/metrics.md: edge i of k quantile bins is the sorted reference value at rank
floor(i*(n-1)/k), ties merged; interior bins [e_j, e_j+1), the last closed; plus an underflow and
an overflow bin. Categorical bins: sorted reference categories plus "unseen".
"""
import json
import math
import os
import sys

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
BINS = 10
ZERO_SHARE = 1e-4


def quantile_edges(ref, k):
    s = np.sort(ref)
    n = len(s)
    edges = []
    for i in range(k + 1):
        e = float(s[(i * (n - 1)) // k])
        if not edges or edges[-1] != e:
            edges.append(e)
    return edges


def histogram(values, edges):
    interior = max(len(edges) - 1, 1)
    counts = [0] * (interior + 2)
    for v in values:
        if v < edges[0]:
            counts[0] += 1
        elif v > edges[-1]:
            counts[-1] += 1
        else:
            below = int(np.searchsorted(edges, v, side="right"))
            counts[min(below, interior)] += 1
    return counts


def psi(r, c):
    r = np.asarray(r, dtype=float)
    c = np.asarray(c, dtype=float)
    p = r / r.sum()
    q = c / c.sum()
    p[p == 0] = ZERO_SHARE
    q[q == 0] = ZERO_SHARE
    return float(np.sum((q - p) * np.log(q / p)))


def hellinger(r, c):
    r = np.asarray(r, dtype=float)
    c = np.asarray(c, dtype=float)
    p = r / r.sum()
    q = c / c.sum()
    return float(min(math.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0), 1.0))


def numeric_case(name, ref, cur):
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    ks = stats.ks_2samp(ref, cur)
    w = float(stats.wasserstein_distance(ref, cur))
    edges = quantile_edges(ref, BINS)
    rc = histogram(ref, edges)
    cc = histogram(cur, edges)
    return {
        "name": name,
        "reference": ref.tolist(),
        "current": cur.tolist(),
        "ks": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue)},
        "wasserstein": {"distance": w, "normed": w / max(float(np.std(ref)), 0.001)},
        "bins": {"edges": edges, "reference": rc, "current": cc},
        "jensen_shannon": float(jensenshannon(rc, cc, base=2)),
        "psi": psi(rc, cc),
        "hellinger": hellinger(rc, cc),
    }


def categorical_case(name, ref_counts, cur_counts):
    labels = sorted(set(ref_counts) | set(cur_counts))
    table = [[ref_counts.get(l, 0) for l in labels], [cur_counts.get(l, 0) for l in labels]]
    stat, p, dof, _ = stats.chi2_contingency(table, correction=False)
    ref_labels = sorted(ref_counts)
    rc = [ref_counts[l] for l in ref_labels] + [0]
    cc = [cur_counts.get(l, 0) for l in ref_labels] + [
        sum(v for l, v in cur_counts.items() if l not in ref_counts)
    ]
    return {
        "name": name,
        "reference": ref_counts,
        "current": cur_counts,
        "chi2": {"statistic": float(stat), "p_value": float(p), "dof": int(dof)},
        "jensen_shannon": float(jensenshannon(rc, cc, base=2)),
        "psi": psi(rc, cc),
        "hellinger": hellinger(rc, cc),
    }


def r4(x):
    """Round to 4 decimals: keeps the files small, and both sides then read identical doubles."""
    return np.round(np.asarray(x, dtype=float), 4)


def numeric_cases(rng):
    cases = []
    normal = lambda n, loc=0.0, scale=1.0: r4(rng.normal(loc, scale, n))
    # Exact p-values (both samples <= 10,000).
    cases.append(numeric_case("equal_small_same", normal(20), normal(20)))
    cases.append(numeric_case("equal_100_shifted", normal(100), normal(100, 0.5)))
    cases.append(numeric_case("equal_1000_same", normal(1000), normal(1000)))
    cases.append(numeric_case("unequal_50_80", normal(50), normal(80, 0.2)))
    cases.append(numeric_case("unequal_1000_700_scaled", normal(1000), normal(700, 0.0, 1.3)))
    cases.append(numeric_case("unequal_3000_10000", normal(3000), normal(10000, 0.03)))
    cases.append(numeric_case("unequal_10000_9999", normal(10000), normal(9999, 0.02)))
    cases.append(numeric_case("single_vs_five", normal(1), normal(5)))
    cases.append(numeric_case("disjoint_small", normal(30), normal(40, 10.0)))
    # Ties: coarse rounding and counts.
    cases.append(numeric_case("ties_rounded", np.round(rng.normal(0, 1, 2000), 1),
                              np.round(rng.normal(0.1, 1, 1500), 1)))
    cases.append(numeric_case("ties_poisson", rng.poisson(3.0, 5000).astype(float),
                              rng.poisson(3.3, 4000).astype(float)))
    # Constant columns.
    cases.append(numeric_case("constant_equal", np.full(500, 2.5), np.full(300, 2.5)))
    cases.append(numeric_case("constant_vs_other", np.full(500, 2.5), np.full(300, 3.0)))
    cases.append(numeric_case("constant_reference", np.full(400, 1.0), normal(200, 1.0)))
    # Asymptotic p-values (a sample over 10,000), covering each kstwo algorithm.
    cases.append(numeric_case("asymp_50000_100_same", normal(50000), normal(100)))       # n=100
    cases.append(numeric_case("asymp_50000_100_shift", normal(50000), normal(100, 0.35)))
    cases.append(numeric_case("asymp_10001_50_far", normal(10001), normal(50, 1.5)))      # n=50
    cases.append(numeric_case("asymp_12000_300", normal(12000), normal(300, 0.1)))        # n=293
    cases.append(numeric_case("asymp_20000_200_shift", normal(20000), normal(200, 0.3)))  # smirnov
    cases.append(numeric_case("asymp_20000_5000", normal(20000), normal(5000, 0.01)))     # n=4000
    cases.append(numeric_case("asymp_50000_50000", normal(50000), normal(50000, 0.005)))  # n=25000
    cases.append(numeric_case("asymp_50000_20000_lognormal", r4(rng.lognormal(0, 1, 50000)),
                              r4(rng.lognormal(0.02, 1, 20000))))
    return cases


def categorical_cases(rng):
    def counts(labels, p, n):
        draws = rng.choice(labels, size=n, p=p)
        values, freq = np.unique(draws, return_counts=True)
        return {str(v): int(f) for v, f in zip(values, freq)}

    labels = ["DE", "FR", "GB", "IT", "NL", "US"]
    base = [0.1, 0.15, 0.2, 0.05, 0.1, 0.4]
    shifted = [0.1, 0.1, 0.2, 0.05, 0.1, 0.45]
    return [
        categorical_case("same_distribution", counts(labels, base, 5000), counts(labels, base, 2000)),
        categorical_case("shifted", counts(labels, base, 5000), counts(labels, shifted, 2000)),
        categorical_case("small", counts(labels, base, 40), counts(labels, base, 25)),
        categorical_case("single_category", {"a": 100}, {"a": 37}),
        categorical_case("new_in_current", {"a": 50, "b": 30}, {"a": 20, "b": 10, "c": 7, "d": 1}),
        categorical_case("missing_in_current", {"a": 50, "b": 30, "c": 5}, {"a": 40, "b": 22}),
        categorical_case("booleans", {"false": 900, "true": 100}, {"false": 850, "true": 150}),
        categorical_case("large_skew", counts(labels, base, 50000), counts(labels, shifted, 50000)),
    ]


def kolmogorov_grid():
    rows = []
    ns = [1, 2, 5, 10, 30, 50, 100, 140, 141, 200, 500, 1000, 4000, 25000, 100000, 150000]
    for n in ns:
        for z in [0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 4.5]:
            x = z / math.sqrt(n)
            if not (0 < x < 1):
                continue
            rows.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n)),
                         "cdf": float(stats.kstwo.cdf(x, n))})
        for x in [0.5 / n + 1e-9, 0.75 / n, 1.0 / n, 0.55, 0.8, 1 - 1.0 / n + 1e-12]:
            if 0 < x < 1:
                rows.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n)),
                             "cdf": float(stats.kstwo.cdf(x, n))})
    smirnov = []
    for n in [1, 3, 10, 100, 1012, 1013, 5000, 25000]:
        for x in [0.001, 0.01, 0.05, 0.1, 0.3, 0.6, 0.9]:
            smirnov.append({"n": n, "x": x, "sf": float(special.smirnov(n, x))})
    return {"kstwo": rows, "smirnov": smirnov}


def data_files(rng):
    """Data files with missing values, NaN, a bad type and an unknown field, plus what scipy
    gives on the usable values."""
    out = os.path.join(FIXTURES, "data")
    os.makedirs(out, exist_ok=True)
    n_ref, n_cur = 3000, 800
    amount_ref = r4(rng.lognormal(3, 1, n_ref))
    amount_cur = r4(rng.lognormal(3.3, 1, n_cur))
    age_ref = rng.integers(18, 90, n_ref).astype(float)
    age_cur = rng.integers(18, 90, n_cur).astype(float)
    countries = ["DE", "FR", "US", "GB"]
    country_ref = rng.choice(countries, n_ref, p=[0.2, 0.2, 0.4, 0.2])
    country_cur = rng.choice(countries + ["BR"], n_cur, p=[0.2, 0.1, 0.4, 0.2, 0.1])

    with open(os.path.join(out, "reference.jsonl"), "w") as f:
        for i in range(n_ref):
            rec = {"ts": 1700000000000 + i, "amount": float(amount_ref[i]), "age": int(age_ref[i]),
                   "country": str(country_ref[i]), "label": int(i % 2)}
            if i % 97 == 0:
                rec["amount"] = None
            f.write(json.dumps(rec) + "\n")
    amount_usable, age_usable, country_usable = [], [], []
    with open(os.path.join(out, "current.csv"), "w") as f:
        f.write("ts,amount,age,country,extra\n")
        for i in range(n_cur):
            amount = repr(float(amount_cur[i]))
            age = str(int(age_cur[i]))
            country = str(country_cur[i])
            if i % 50 == 0:
                amount = ""          # missing
            elif i % 51 == 0:
                amount = "NaN"       # NaN
            elif i % 53 == 0:
                amount = "n/a"       # wrong type
            else:
                amount_usable.append(float(amount_cur[i]))
            if i % 40 == 0:
                country = ""
            else:
                country_usable.append(country)
            age_usable.append(float(age_cur[i]))
            f.write(f"{i},{amount},{age},{country},x\n")

    amount_ref_usable = [float(amount_ref[i]) for i in range(n_ref) if i % 97 != 0]
    expected = {
        "amount": numeric_case("amount", amount_ref_usable, amount_usable),
        "age": numeric_case("age", age_ref.tolist(), age_usable),
        "country": categorical_case(
            "country",
            {k: int(v) for k, v in zip(*np.unique(country_ref, return_counts=True))},
            {k: int(v) for k, v in zip(*np.unique(np.array(country_usable), return_counts=True))},
        ),
    }
    for case in expected.values():
        # The data is in the files; keep only the statistics.
        case.pop("reference", None)
        case.pop("current", None)
    # The unusable current values, counted exactly as written above.
    missing = sum(1 for i in range(n_cur) if i % 50 == 0)
    nan = sum(1 for i in range(n_cur) if i % 50 != 0 and i % 51 == 0)
    invalid = sum(1 for i in range(n_cur) if i % 50 != 0 and i % 51 != 0 and i % 53 == 0)
    expected["_quality"] = {
        "amount": {"missing": missing, "nan": nan, "invalid": invalid},
        "country": {"missing": sum(1 for i in range(n_cur) if i % 40 == 0)},
        "reference_amount_missing": sum(1 for i in range(n_ref) if i % 97 == 0),
    }
    write_json(os.path.join(out, "expected.json"), expected)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def main():
    rng = np.random.default_rng(20261123)
    provenance = {
        "generator": "scripts/gen_fixtures.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": 20261123,
    }
    write_json(os.path.join(FIXTURES, "scipy_stats.json"), {
        "provenance": provenance,
        "bins": BINS,
        "numeric": numeric_cases(rng),
        "categorical": categorical_cases(rng),
    })
    write_json(os.path.join(FIXTURES, "kolmogorov.json"), {"provenance": provenance, **kolmogorov_grid()})
    data_files(rng)


if __name__ == "__main__":
    main()
