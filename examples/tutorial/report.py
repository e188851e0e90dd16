"""python -m report CLEAN_JSON: one line about the cleaned readings."""
import json
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    clean = json.load(f)
print(f"{clean['city']}: mean {clean['mean']:.1f} degrees")
