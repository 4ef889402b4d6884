#!/usr/bin/env python3
"""Example task: compare the challenger with the champion (var/models/MODEL.json) and decide
whether to promote it (metrics.json: {"promote": bool})."""
import json
import os

with open(os.environ["DRIFTGATE_CONTEXT"]) as f:
    context = json.load(f)
champion_path = os.path.join("var", "models", os.environ["DRIFTGATE_MODEL"] + ".json")
challenger = context["upstream"]["train"]["model.json"]
# A stand-in for a holdout evaluation: promote when there is no champion yet, or when the
# challenger was trained on data the champion did not see.
promote = True
if os.path.exists(champion_path):
    with open(champion_path) as f, open(challenger) as g:
        promote = json.load(f)["inputs"] != json.load(g)["inputs"]
with open(os.path.join(os.environ["DRIFTGATE_ARTIFACTS_DIR"], "metrics.json"), "w") as f:
    json.dump({"promote": promote}, f)
print("promote" if promote else "keep the champion")
