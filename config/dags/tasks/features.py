#!/usr/bin/env python3
"""Example task: summarise one feature group of the triggering window (features named as
arguments) into features.json. Reads the window export named in $DRIFTGATE_CONTEXT."""
import json
import os
import sys

with open(os.environ["DRIFTGATE_CONTEXT"]) as f:
    context = json.load(f)
window = {}
if context.get("window_file"):
    with open(context["window_file"]) as f:
        window = json.load(f).get("features", {})
summary = {}
for name in sys.argv[1:]:
    column = window.get(name, {})
    if column.get("kind") == "numeric":
        values = column.get("values", [])
        summary[name] = {"count": len(values), "mean": sum(values) / len(values) if values else None}
    else:
        counts = column.get("counts", {})
        summary[name] = {"count": sum(counts.values()), "categories": len(counts)}
with open(os.path.join(os.environ["DRIFTGATE_ARTIFACTS_DIR"], "features.json"), "w") as f:
    json.dump(summary, f, sort_keys=True)
print(f"summarised {', '.join(sys.argv[1:])} for {os.environ['DRIFTGATE_MODEL']}")
