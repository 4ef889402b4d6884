#!/usr/bin/env python3
"""Example task: make the challenger the champion (var/models/MODEL.json)."""
import json
import os
import shutil

with open(os.environ["DRIFTGATE_CONTEXT"]) as f:
    context = json.load(f)
os.makedirs(os.path.join("var", "models"), exist_ok=True)
target = os.path.join("var", "models", os.environ["DRIFTGATE_MODEL"] + ".json")
shutil.copyfile(context["upstream"]["train"]["model.json"], target)
print("promoted to", target)
