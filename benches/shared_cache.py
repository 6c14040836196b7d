"""Row 6.1 of BENCHMARKS.md, as JSON lines on stdout (see benches/report.py): token requests
made by 20 `lwolf token` processes started at once on a cold cache, with the shared on-disk
cache (a fresh LWOLF_CACHE_DIR) against without it (`--no-cache`), counted by the sandbox.

    python3 benches/shared_cache.py LWOLF_BINARY [--quick]

Needs the LWOLF_* variables of a running sandbox (its /_sandbox/stats counts token requests).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

PROCESSES = 20


def token_requests():
    base = os.environ["LWOLF_TOKEN_URL"].rsplit("/oauth/token", 1)[0]
    with urllib.request.urlopen(base + "/_sandbox/stats", timeout=10) as r:
        return json.load(r)["token_requests"]


def storm(lwolf, shared):
    """Starts PROCESSES `lwolf token` at once; returns (token requests, distinct tokens, seconds)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, LWOLF_CACHE_DIR=cache)
        args = [lwolf, "token"] + ([] if shared else ["--no-cache"])
        before = token_requests()
        start = time.monotonic()
        procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE) for _ in range(PROCESSES)]
        tokens = set()
        for p in procs:
            out, _ = p.communicate(timeout=120)
            if p.returncode != 0:
                raise SystemExit("lwolf token failed with %d" % p.returncode)
            tokens.add(out.strip())
        elapsed = time.monotonic() - start
        return token_requests() - before, len(tokens), elapsed


def main():
    lwolf = sys.argv[1]
    rounds = 2 if "--quick" in sys.argv else 5
    shared, alone = [], []
    for i in range(rounds):
        # Alternate which side goes first.
        for side in ([True, False] if i % 2 == 0 else [False, True]):
            (shared if side else alone).append(storm(lwolf, side))
    row = {
        "id": "6.1-shared-cache-processes",
        "what": "Token requests for %d cold `lwolf token` processes started at once" % PROCESSES,
        "ours": "%d (max of %d rounds; shared `cache_dir`; %d distinct token(s) printed)"
        % (max(r[0] for r in shared), rounds, max(r[1] for r in shared)),
        "baseline": "%d (median; `--no-cache`, each process on its own)"
        % statistics.median(r[0] for r in alone),
        "ratio": max(r[0] for r in shared) / statistics.median(r[0] for r in alone),
        "target": "1 request",
        "met": max(r[0] for r in shared) == 1,
        "note": "wall time for all %d: %.0f ms shared, %.0f ms alone (medians of %d rounds, order alternated)"
        % (
            PROCESSES,
            1000 * statistics.median(r[2] for r in shared),
            1000 * statistics.median(r[2] for r in alone),
            rounds,
        ),
    }
    print(json.dumps(row, ensure_ascii=False), flush=True)
    print("%-24s ours %s baseline %s" % (row["id"], row["ours"], row["baseline"]), file=sys.stderr)


if __name__ == "__main__":
    main()
