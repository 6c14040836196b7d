"""Turns `go test -bench` output (BenchmarkToken, BenchmarkVariable) into BENCHMARKS.md row
8.2 as one JSON line for benches/report.py.

    go test -run '^$' -bench . ./... | python3 benches/go/bench_row.py
"""

import json
import re
import sys

text = sys.stdin.read()
ns = {m.group(1): float(m.group(2)) for m in re.finditer(r"^Benchmark(\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op", text, re.M)}
if "Token" not in ns or "Variable" not in ns:
    sys.exit("no BenchmarkToken / BenchmarkVariable result in:\n" + text)
version = re.search(r"go(\d+\.\d+(?:\.\d+)?)", text)
row = {
    "id": "8.2-token-go",
    "what": "Cached token, Go `client.Token()` (cgo), 1 goroutine",
    "ours": "%.1f ns/call" % ns["Token"],
    "baseline": "%.2f ns/call (reading a variable holding the token)" % ns["Variable"],
    "ratio": ns["Token"] / ns["Variable"],
    "target": "none set",
    "met": None,
    "note": "`go test -bench` (its own iteration count); the call crosses into C through cgo, "
    "locks the goroutine to its thread (the last error is per thread) and copies the token "
    "into a new Go string",
}
print(json.dumps(row, ensure_ascii=False))
print("%s ours %s baseline %s" % (row["id"], row["ours"], row["baseline"]), file=sys.stderr)
