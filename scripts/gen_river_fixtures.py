#!/usr/bin/env python3
"""Fixtures for driftgate's change detectors, from River (the reference implementation).

Writes tests/fixtures/river_detectors.json: streams (0/1 error streams whose error rate changes,
and real-valued streams whose mean shifts up or down) with the indices at which River's
PageHinkley signals drift, for several parameter sets. tests/detectors.rs holds driftgate's
detectors to the same indices.

Run from the repository root:  pip install river && python3 scripts/gen_river_fixtures.py
"""
import json
import os
import random

import river
from river.drift import PageHinkley

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
    return out


PARAMS = [
    {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "alpha": 1 - 0.0001, "mode": "both"},
    {"min_instances": 30, "delta": 0.005, "threshold": 10.0, "alpha": 1 - 0.0001, "mode": "up"},
    {"min_instances": 10, "delta": 0.01, "threshold": 5.0, "alpha": 0.999, "mode": "down"},
    {"min_instances": 50, "delta": 0.001, "threshold": 20.0, "alpha": 1.0, "mode": "both"},
]


def main():
    cases = []
    for stream in streams():
        for params in PARAMS:
            detector = PageHinkley(**params)
            detections = []
            for i, x in enumerate(stream["values"]):
                detector.update(x)
                if detector.drift_detected:
                    detections.append(i)
            cases.append({"stream": stream["name"], "detector": "page_hinkley", "params": params,
                          "values": stream["values"], "detections": detections})
    path = os.path.join(ROOT, "tests", "fixtures", "river_detectors.json")
    with open(path, "w") as f:
        json.dump({"generator": f"scripts/gen_river_fixtures.py with river {river.__version__}",
                   "cases": cases}, f)
    print(f"{path}: {len(cases)} cases, {sum(len(c['detections']) for c in cases)} detections")


if __name__ == "__main__":
    main()
