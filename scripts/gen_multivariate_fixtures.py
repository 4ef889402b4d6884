#!/usr/bin/env python3
"""Generate the fixture that pins driftgate's multivariate statistics.

Run from the repository root:  python3 scripts/gen_multivariate_fixtures.py
Needs numpy. With scikit-learn and NannyML installed (pip install nannyml) it also records their
values, which the test then checks too. Writes tests/fixtures/multivariate.json:

  reference, current   rows of four features (rounded to 6 decimals; every value below is
                        computed from the rounded numbers): f0 and f1 correlated 0.8 in the
                        reference and -0.8 in the current rows, f2 and f3 unchanged
  numpy                 PCA reconstruction error as docs/metrics.md defines it, by numpy:
                        kept components, per-row errors of the current rows, mean error of each
                        current chunk, and the band from the reference's chunks
  sklearn               the same kept components and errors from sklearn's StandardScaler + PCA
  nannyml               DataReconstructionDriftCalculator(chunk_size=CHUNK): the reference
                        chunks' values, the thresholds and the current chunks' values
  mmd                   on the first MMD_ROWS reference and current rows: alibi-detect's
                        median-heuristic sigma and unbiased MMD² (its sigma_median and
                        mmd2_from_kernel_matrix with zero_diag, written out in numpy)
"""
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "multivariate.json")
CHUNK = 100
VARIANCE = 0.65
MMD_ROWS = (300, 100)


def rows(rng, n, rho):
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    f1 = rho * a + np.sqrt(1 - rho * rho) * b
    f2 = 50 + 10 * rng.standard_normal(n)
    f3 = 0.5 * (f2 - 50) / 10 + rng.standard_normal(n)
    return np.round(np.column_stack([a, f1, f2, f3]), 6)


def numpy_side(reference, current):
    mean = reference.mean(axis=0)
    scale = reference.std(axis=0)
    scale[scale == 0] = 1.0
    z = (reference - mean) / scale
    centre = z.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(z - centre, rowvar=False, ddof=1))
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    explained = values / values.sum()
    kept = min(int(np.searchsorted(np.cumsum(explained), VARIANCE, side="right")) + 1, len(values))
    v = vectors[:, :kept].T

    def errors(data):
        c = (data - mean) / scale - centre
        return np.linalg.norm(c - c @ v.T @ v, axis=1)

    ref_chunks = errors(reference).reshape(-1, CHUNK).mean(axis=1)
    centre_chunks, spread = ref_chunks.mean(), ref_chunks.std()
    return {
        "explained": explained.tolist(),
        "kept": kept,
        "current_errors": errors(current).tolist(),
        "current_chunks": errors(current).reshape(-1, CHUNK).mean(axis=1).tolist(),
        "reference_chunks": ref_chunks.tolist(),
        "lower": max(centre_chunks - 3 * spread, 0.0),
        "upper": centre_chunks + 3 * spread,
    }


def sklearn_side(reference, current):
    try:
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return None
    scaler = StandardScaler().fit(reference)
    pca = PCA(n_components=VARIANCE, random_state=16).fit(scaler.transform(reference))
    z = scaler.transform(current)
    errors = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)
    return {"kept": int(pca.n_components_), "current_errors": errors.tolist()}


def nannyml_side(reference, current):
    try:
        import nannyml
        import pandas as pd
    except ImportError:
        return None
    columns = ["f0", "f1", "f2", "f3"]
    frame = lambda data: pd.DataFrame(data, columns=columns)
    calc = nannyml.DataReconstructionDriftCalculator(column_names=columns, chunk_size=CHUNK)
    calc.fit(frame(reference))
    ref = calc.calculate(frame(reference)).filter(period="reference").to_df()
    cur = calc.calculate(frame(current)).filter(period="analysis").to_df()
    value = ("reconstruction_error", "value")
    return {
        "version": nannyml.__version__,
        "reference_chunks": ref[value].tolist(),
        "current_chunks": cur[value].tolist(),
        "lower": float(calc.lower_threshold_value),
        "upper": float(calc.upper_threshold_value),
    }


def mmd_side(reference, current):
    x, y = reference[: MMD_ROWS[0]], current[: MMD_ROWS[1]]

    def squared(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)

    n = len(x)
    flat = np.sort(squared(x, x).ravel())
    sigma = float(np.sqrt(0.5 * flat[n + (n * n - n) // 2 - 1]))
    pooled = np.vstack([x, y])
    kernel = np.exp(-squared(pooled, pooled) / (2 * sigma * sigma))
    np.fill_diagonal(kernel, 0.0)
    m = len(y)
    k_xx, k_yy, k_xy = kernel[:-m, :-m], kernel[-m:, -m:], kernel[-m:, :-m]
    mmd2 = k_xx.sum() / (n * (n - 1)) + k_yy.sum() / (m * (m - 1)) - 2 * k_xy.mean()
    return {"reference_rows": MMD_ROWS[0], "current_rows": MMD_ROWS[1], "sigma": sigma,
            "mmd2": float(mmd2)}


def main():
    rng = np.random.default_rng(19)
    reference = rows(rng, 1000, 0.8)
    current = rows(rng, 200, -0.8)
    fixture = {
        "chunk": CHUNK,
        "variance": VARIANCE,
        "reference": reference.tolist(),
        "current": current.tolist(),
        "numpy": numpy_side(reference, current),
        "sklearn": sklearn_side(reference, current),
        "nannyml": nannyml_side(reference, current),
        "mmd": mmd_side(reference, current),
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
