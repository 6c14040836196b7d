"""Rows 9.1-9.4 of BENCHMARKS.md, as JSON lines on stdout (see benches/report.py): the fleet
cache (`cache_url`). 100 cold `lwolf token` processes over 5 "hosts" (each its own
LWOLF_CACHE_DIR) started at once, with a Redis of their own against without one; what the
fleet cost that Redis, counted by the server itself (INFO commandstats, INFO stats); and 20
long-running processes (the Python binding) over 5 hosts through several short token lifetimes.

    python3 benches/fleet.py LWOLF_BINARY LIBLWOLF_AUTH_SO [--quick]

Needs the LWOLF_* variables of a running sandbox (its /_sandbox/stats counts token requests)
and redis-server (Debian's redis-server; benches/run.sh installs it).
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HOSTS = 5
PER_HOST = 20


def token_requests():
    base = os.environ["LWOLF_TOKEN_URL"].rsplit("/oauth/token", 1)[0]
    with urllib.request.urlopen(base + "/_sandbox/stats", timeout=10) as r:
        return json.load(r)["token_requests"]


class Redis:
    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while b"PONG" not in self.command("PING"):
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)
        self.url = "redis://127.0.0.1:%d" % self.port

    def command(self, *words):
        req = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(req)
                data = b""
                s.settimeout(0.2)
                while True:
                    try:
                        chunk = s.recv(1 << 16)
                    except socket.timeout:
                        break
                    if not chunk:
                        break
                    data += chunk
                return data
        except OSError:
            return b""

    def stats(self):
        """(commands the fleet ran, connections it made, {command: calls}), since the last
        CONFIG RESETSTAT."""
        info = self.command("INFO", "all").decode(errors="replace")
        by_command = {}
        connections = 0
        for line in info.splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                calls = int(rest.split(",")[0].split("=")[1])
                # This script's own: INFO itself, and the FLUSHALL / CONFIG of the setup.
                if not name.startswith(("cmdstat_info", "cmdstat_flushall", "cmdstat_config", "cmdstat_ping")):
                    by_command[name[len("cmdstat_"):]] = calls
            elif line.startswith("total_connections_received:"):
                # Less this script's INFO connection.
                connections = int(line.split(":")[1]) - 1
        return sum(by_command.values()), connections, by_command

    def reset(self):
        self.command("FLUSHALL")
        self.command("CONFIG", "RESETSTAT")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def fleet(lwolf, cache_url, hosts_dir):
    """Starts HOSTS x PER_HOST `lwolf token` at once; returns (token requests, distinct tokens)."""
    before = token_requests()
    procs = []
    for _ in range(PER_HOST):
        for h in range(HOSTS):
            env = dict(os.environ, LWOLF_CACHE_DIR=os.path.join(hosts_dir, "host%d" % h), LWOLF_CACHE_URL=cache_url)
            procs.append(subprocess.Popen([lwolf, "token"], env=env, stdout=subprocess.PIPE))
    tokens = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        if p.returncode != 0:
            raise SystemExit("lwolf token failed with %d" % p.returncode)
        tokens.add(out.strip())
    return token_requests() - before, len(tokens)


# One long-running process of row 9.4: reads its token every 20 ms for DURATION seconds and
# prints how many distinct tokens it saw.
WORKER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
import lwolf_auth
client = lwolf_auth.Client.from_env()
seen = set()
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    seen.add(client.token_info().fingerprint)
    time.sleep(0.02)
print(len(seen))
"""


def lifetimes(lwolf, lib, redis, with_url, ttl, count):
    """20 processes over 5 hosts for `count` token lifetimes of `ttl` s against a sandbox of
    their own; returns (token requests, Redis commands, Redis connections)."""
    sandbox = subprocess.run(
        [lwolf, "sandbox", "--detach", "--token-ttl", str(ttl)], capture_output=True, text=True, check=True
    ).stdout
    env = dict(os.environ)
    for line in sandbox.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    base = env["LWOLF_TOKEN_URL"].rsplit("/oauth/token", 1)[0]
    stats = lambda: json.load(urllib.request.urlopen(base + "/_sandbox/stats", timeout=10))["token_requests"]
    redis.reset()
    bindings = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python")
    try:
        with tempfile.TemporaryDirectory() as hosts:
            procs = []
            for i in range(20):
                penv = dict(env, LWOLF_AUTH_LIB=lib, LWOLF_CACHE_DIR=os.path.join(hosts, "host%d" % (i % HOSTS)),
                            LWOLF_CACHE_URL=redis.url if with_url else "")
                procs.append(subprocess.Popen([sys.executable, "-c", WORKER, bindings, str(ttl * count)],
                                              env=penv, stdout=subprocess.PIPE))
            for p in procs:
                p.communicate(timeout=ttl * count + 60)
                if p.returncode != 0:
                    raise SystemExit("a long-running process failed")
        commands, connections, _ = redis.stats()
        return stats(), commands, connections
    finally:
        os.kill(int(env["LWOLF_SANDBOX_PID"]), 15)


def main():
    lwolf, lib = sys.argv[1], sys.argv[2]
    rounds = 2 if "--quick" in sys.argv else 3
    redis = Redis()
    n = HOSTS * PER_HOST
    try:
        with_url, without, cold_cost, warm_cost = [], [], [], []
        for i in range(rounds):
            for side in ([True, False] if i % 2 == 0 else [False, True]):
                with tempfile.TemporaryDirectory() as hosts:
                    if not side:
                        without.append(fleet(lwolf, "", hosts))
                        continue
                    redis.reset()
                    with_url.append(fleet(lwolf, redis.url, hosts))
                    cold_cost.append(redis.stats())
                # The same fleet on new hosts: their memory and files cold, Redis warm.
                if side:
                    with tempfile.TemporaryDirectory() as hosts:
                        redis.command("CONFIG", "RESETSTAT")
                        requests, _ = fleet(lwolf, redis.url, hosts)
                        if requests != 0:
                            raise SystemExit("a warm fleet asked for %d token(s)" % requests)
                        warm_cost.append(redis.stats())
        ttl, count = (4, 2) if "--quick" in sys.argv else (8, 3)
        long_url = lifetimes(lwolf, lib, redis, True, ttl, count)
        long_alone = lifetimes(lwolf, lib, redis, False, ttl, count)
    finally:
        redis.stop()

    worst = max(r[0] for r in with_url)
    rows = [
        {
            "id": "9.1-fleet-token-requests",
            "what": "Token requests for %d cold `lwolf token` processes over %d hosts (a `cache_dir` each), started at once"
            % (n, HOSTS),
            "ours": "%d (max of %d rounds; with `cache_url`; %d distinct token(s) printed)"
            % (worst, rounds, max(r[1] for r in with_url)),
            "baseline": "%d (median; `cache_dir` only: one per host)" % statistics.median(r[0] for r in without),
            "ratio": worst / statistics.median(r[0] for r in without),
            "target": "1 request",
            "met": worst == 1,
            "note": "%d processes over %d hosts, %d rounds each side, order alternated" % (n, HOSTS, rounds),
        },
        {
            "id": "9.2-fleet-redis-cost-cold",
            "what": "Redis cost of that cold fleet (all %d processes together), counted by the server" % n,
            "ours": "%d commands over %d connections (median)"
            % (statistics.median(c[0] for c in cold_cost), statistics.median(c[1] for c in cold_cost)),
            "baseline": "%d processes" % n,
            "ratio": statistics.median(c[1] for c in cold_cost) / n,
            "target": "≤ 1 connection per host's first process, at most one per process",
            "met": max(c[1] for c in cold_cost) <= n,
            "note": "ratio: connections per process; the processes of a host that find its file warm never connect. "
            "The commands of one round: %s" % ", ".join("%s %d" % kv for kv in sorted(cold_cost[-1][2].items())),
        },
        {
            "id": "9.3-fleet-redis-cost-warm",
            "what": "Redis cost of %d more processes on %d new hosts (Redis warm): their one read each" % (n, HOSTS),
            "ours": "%d commands over %d connections (median)"
            % (statistics.median(c[0] for c in warm_cost), statistics.median(c[1] for c in warm_cost)),
            "baseline": "%d processes" % n,
            "ratio": statistics.median(c[0] for c in warm_cost) / n,
            "target": "≤ 1 command and 1 connection per process",
            "met": max(c[0] for c in warm_cost) <= n and max(c[1] for c in warm_cost) <= n,
            "note": "ratio: commands per process. The commands of one round: %s"
            % ", ".join("%s %d" % kv for kv in sorted(warm_cost[-1][2].items())),
        },
    ]
    rows.append(
        {
            "id": "9.4-fleet-lifetimes",
            "what": "20 long-running processes over %d hosts (Python binding, a token every 20 ms) for %d token lifetimes of %d s: token requests"
            % (HOSTS, count, ttl),
            "ours": "%d with `cache_url`; Redis: %d commands over %d connections, %.1f commands and %.1f connections per lifetime"
            % (long_url[0], long_url[1], long_url[2], long_url[1] / count, long_url[2] / count),
            "baseline": "%d with `cache_dir` only" % long_alone[0],
            "ratio": long_url[0] / long_alone[0],
            "target": "1 token request per lifetime (%d), refreshes included" % (count + 1),
            "met": long_url[0] <= count + 1,
            "note": "each lifetime ends in a refresh at 85-90%% of it; %d lifetimes of run time hold %d refreshes and the first fetch"
            % (count, count),
        }
    )
    for row in rows:
        print(json.dumps(row, ensure_ascii=False), flush=True)
        print("%-28s ours %s baseline %s" % (row["id"], row["ours"], row["baseline"]), file=sys.stderr)


if __name__ == "__main__":
    main()
