#!/usr/bin/env python3
"""Labelled drifting streams for `driftgate backtest`, from River's generators (seeded), and one
covariate shift drawn with Python's own seeded generator.

Writes, for each stream, into tests/fixtures/backtest/:
  NAME.jsonl           the recorded stream: one message a line, {"records": [...]} of 50 records,
                       each with `ts` (one record a second from 2026-01-01), the features and `label`;
  NAME.training.jsonl  the initial training set: 2,000 records of the stream's first concept
                       (another seed), one record a line;
  NAME.features        the features, one `name kind` a line (numeric or categorical).

tests/backtest.rs replays each through `driftgate backtest` with the built-in retraining tasks.

Run from the repository root:  pip install river && python3 scripts/gen_backtest_streams.py
"""
import json
import os
import random

import river
from river.datasets import synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "backtest")
RECORDS = 8000
TRAINING = 2000
BATCH = 50
START_MS = 1767225600000  # 2026-01-01T00:00:00Z

AGRAWAL_CATEGORICAL = {"elevel", "car", "zipcode"}


def sea(variant, seed):
    return synth.SEA(variant=variant, seed=seed)


def agrawal(function, seed):
    return synth.Agrawal(classification_function=function, seed=seed)


def hyperplane(seed):
    return synth.Hyperplane(seed=seed, n_features=5, n_drift_features=3, mag_change=0.002,
                            noise_percentage=0.05, sigma=0.1)


# name -> (the recorded stream, the initial training stream)
STREAMS = {
    # SEA's threshold moves from 8 to 9.5 around record 4,000 (variant 0 -> 3; River's
    # sigmoid needs a width of some records, 50 here: one message).
    "sea_abrupt": (synth.ConceptDriftStream(sea(0, 1), sea(3, 2), position=4000, width=50, seed=3),
                   sea(0, 11)),
    # The same change, spread over 2,000 records.
    "sea_gradual": (synth.ConceptDriftStream(sea(0, 1), sea(3, 2), position=4000, width=2000,
                                             seed=3), sea(0, 11)),
    # Agrawal's function 0 (age bands) becomes function 2 (age and salary) around record 4,000.
    "agrawal_abrupt": (synth.ConceptDriftStream(agrawal(0, 1), agrawal(2, 2), position=4000,
                                                width=50, seed=3), agrawal(0, 11)),
    # A rotating hyperplane: incremental drift throughout.
    "hyperplane": (hyperplane(1), hyperplane(1)),
}


class Shift:
    """A covariate shift with the concept moving along: `x0` ~ N(0, 1) and label
    `x0 + x1 / 2 > 0` until record `position`, then `x0` ~ N(2, 1) and label `x0 + x1 / 2 > 2`;
    `x1` ~ N(0, 1) throughout. (River's classification generators keep their features' law.)"""

    def __init__(self, seed, position=None):
        self.seed, self.position = seed, position

    def take(self, n):
        rng = random.Random(self.seed)
        for i in range(n):
            shifted = self.position is not None and i >= self.position
            centre = 2.0 if shifted else 0.0
            x = {"x0": round(rng.gauss(centre, 1.0), 4), "x1": round(rng.gauss(0.0, 1.0), 4)}
            yield x, x["x0"] + x["x1"] / 2 > centre


STREAMS["shift"] = (Shift(1, position=4000), Shift(11))


def feature_name(key):
    return f"x{key}" if isinstance(key, int) else key


def record(x, y):
    out = {}
    for key, value in x.items():
        name = feature_name(key)
        if name in AGRAWAL_CATEGORICAL:
            out[name] = str(value)
        elif isinstance(value, float):
            out[name] = round(value, 4)
        else:
            out[name] = value
    out["label"] = int(y)
    return out


def kinds(x):
    return [(feature_name(k), "categorical" if feature_name(k) in AGRAWAL_CATEGORICAL else "numeric")
            for k in x]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (stream, training) in STREAMS.items():
        rows = [record(x, y) for x, y in stream.take(RECORDS)]
        with open(os.path.join(OUT, f"{name}.jsonl"), "w") as f:
            for start in range(0, RECORDS, BATCH):
                batch = []
                for i in range(start, start + BATCH):
                    batch.append({"ts": START_MS + i * 1000, **rows[i]})
                f.write(json.dumps({"records": batch}, separators=(",", ":")) + "\n")
        # The training set is the first concept, but for the hyperplane, which drifts from the
        # start: its first records.
        if name == "hyperplane":
            train = rows[:TRAINING]
            first = next(iter(hyperplane(1).take(1)))[0]
        else:
            train = [record(x, y) for x, y in training.take(TRAINING)]
            first = next(iter(training.take(1)))[0]
        with open(os.path.join(OUT, f"{name}.training.jsonl"), "w") as f:
            for row in train:
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
        with open(os.path.join(OUT, f"{name}.features"), "w") as f:
            for feature, kind in kinds(first):
                f.write(f"{feature} {kind}\n")
        print(f"{name}: {RECORDS} records, {TRAINING} training (river {river.__version__})")


if __name__ == "__main__":
    main()
