#!/usr/bin/env bash
# Runs the engine benchmark ROUNDS times (default 3) and prints a table of the median time
# per event, events/s, and the ratio to the serde_json baseline measured in the same runs.
# Usage: benches/engine-report.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
out=$(mktemp -d)
for i in $(seq 1 "$rounds"); do
  cargo bench --bench engine -- --warm-up-time 2 --measurement-time 5 >/dev/null 2>&1
  for f in target/criterion/engine/*/new/estimates.json target/criterion/engine/*/*/new/estimates.json; do
    [ -f "$f" ] || continue
    name=${f#target/criterion/engine/}; name=${name%/new/estimates.json}
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$f" >> "$out/$(echo "$name" | tr '/ ' '__')"
  done
done
python3 - "$out" "$rounds" <<'PY'
import os, sys, statistics
out, rounds = sys.argv[1], sys.argv[2]
runs = {name: sorted(float(x) for x in open(os.path.join(out, name))) for name in os.listdir(out)}
base = statistics.median(runs.pop(next(n for n in runs if n.startswith("baseline"))))
print(f"median of {rounds} runs; time per event in µs\n")
print("| benchmark | µs/event | events/s | × baseline |")
print("|---|---:|---:|---:|")
print(f"| serde_json parse + serialize (baseline) | {base/1000:.2f} | {1e9/base:,.0f} | 1.00 |")
for name in sorted(runs):
    m = statistics.median(runs[name])
    print(f"| {name.replace('_', ' ')} | {m/1000:.2f} | {1e9/m:,.0f} | {m/base:.2f} |")
PY
