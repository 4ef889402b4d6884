#!/usr/bin/env python3
"""Fixtures for driftgate's change detectors, from River (the reference implementation).

Writes tests/fixtures/river_detectors.json: named streams (0/1 error streams whose error rate changes,
and real-valued streams whose mean shifts up or down) with the indices at which River's
PageHinkley and ADWIN signal drift, for several parameter sets. tests/detectors.rs holds driftgate's
detectors to the same indices.

Run from the repository root:  pip install river && python3 scripts/gen_river_fixtures.py
"""
import json
import os
import random

import river
from river.drift import ADWIN, PageHinkley

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def streams():
    rng = random.Random(7)
    out = []
    for before, after, n in [(0.05, 0.3, 3000), (0.1, 0.1, 3000), (0.3, 0.05, 3000), (0.02, 0.5, 1500)]:
        values = [1.0 if rng.random() < before else 0.0 for _ in range(n // 2)]
        values += [1.0 if rng.random() < after else 0.0 for _ in range(n - n // 2)]
        out.append({"name": f"errors {before}->{after}", "values": values})
    for shift in [3.0, -3.0, 0.0]:
        values = [rng.gauss(0, 1) for _ in range(1000)] + [rng.gauss(shift, 1) for _ in range(1000)]
        out.append({"name": f"gaussian shift {shift}", "values": values})
    # Several changes in one stream: each detection is followed by a fresh detector.
    rng = random.Random(11)
    values = []
    for mean in [0.0, 2.0, -1.0, 1.0, 1.0, 4.0, 0.5, -2.0]:
        values += [rng.gauss(mean, 1) for _ in range(600)]
    out.append({"name": "gaussian, eight segments", "values": values})
    values = []
    for rate in [0.1, 0.25, 0.1, 0.4, 0.2, 0.05]:
        values += [1.0 if rng.random() < rate else 0.0 for _ in range(800)]
    out.append({"name": "errors, six segments", "values": values})
    # A slow drift: the mean climbs by 3 over 4000 values.
    out.append({"name": "gaussian, gradual drift",
                "values": [rng.gauss(3.0 * i / 4000, 1) for i in range(4000)]})
    return out


PARAMS = [
    {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "alpha": 1 - 0.0001, "mode": "both"},
    {"min_instances": 30, "delta": 0.005, "threshold": 10.0, "alpha": 1 - 0.0001, "mode": "up"},
    {"min_instances": 10, "delta": 0.01, "threshold": 5.0, "alpha": 0.999, "mode": "down"},
    {"min_instances": 50, "delta": 0.001, "threshold": 20.0, "alpha": 1.0, "mode": "both"},
]

ADWIN_PARAMS = [
    {"delta": 0.002, "clock": 32, "max_buckets": 5, "min_window_length": 5, "grace_period": 10},
    {"delta": 0.05, "clock": 1, "max_buckets": 5, "min_window_length": 5, "grace_period": 10},
    {"delta": 0.01, "clock": 8, "max_buckets": 3, "min_window_length": 10, "grace_period": 50},
    {"delta": 0.1, "clock": 4, "max_buckets": 2, "min_window_length": 2, "grace_period": 5},
]


def detections(detector, values):
    found = []
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def main():
    cases = []
    all_streams = streams()
    for stream in all_streams:
        for params in PARAMS:
            cases.append({"stream": stream["name"], "detector": "page_hinkley", "params": params,
                          "detections": detections(PageHinkley(**params), stream["values"])})
        for params in ADWIN_PARAMS:
            cases.append({"stream": stream["name"], "detector": "adwin", "params": params,
                          "detections": detections(ADWIN(**params), stream["values"])})
    path = os.path.join(ROOT, "tests", "fixtures", "river_detectors.json")
    with open(path, "w") as f:
        json.dump({"generator": f"scripts/gen_river_fixtures.py with river {river.__version__}",
                   "streams": {s["name"]: s["values"] for s in all_streams},
                   "cases": cases}, f)
    print(f"{path}: {len(cases)} cases, {sum(len(c['detections']) for c in cases)} detections")


if __name__ == "__main__":
    main()
