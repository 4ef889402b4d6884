#!/usr/bin/env python3
"""Example task: "train" a challenger from the upstream feature summaries (model.json)."""
import json
import os

with open(os.environ["DRIFTGATE_CONTEXT"]) as f:
    context = json.load(f)
inputs = {}
for task, outputs in sorted(context["upstream"].items()):
    with open(outputs["features.json"]) as f:
        inputs.update(json.load(f))
model = {"model": os.environ["DRIFTGATE_MODEL"], "run": os.environ["DRIFTGATE_RUN_ID"], "inputs": inputs}
with open(os.path.join(os.environ["DRIFTGATE_ARTIFACTS_DIR"], "model.json"), "w") as f:
    json.dump(model, f, sort_keys=True)
print("trained", model["model"])
