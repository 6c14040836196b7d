"""Rows 12.x: `lwolf agent`, side by side in one run on loopback.

    python3 benches/agent.py SERVER_ENV_FILE LWOLF_BINARY COMPARE_BINARY [--quick]   # JSON rows on stdout

- 12.1: authenticated GETs through `lwolf agent --proxy` against the same GETs through nginx
  (Debian's nginx-light, `proxy_pass` with a fixed `Authorization` header, keep-alive to the
  upstream, `worker_processes auto`), both driven by wrk (2 threads, 16 connections), in
  alternating rounds against the bench's minimal server;
- 12.2: the p99 latency each proxy adds to a GET sent straight to that server (wrk, the same
  header), measured in the same rounds;
- 12.4: the same GETs made straight through the library, 16 threads sharing one client
  (`compare load`, the Rust bench binary), in the same rounds: what a program that can load
  the library gets, against what the agent gives one that cannot;
- 12.3: the token read over the agent's socket (a new connection per read, as a script's curl
  makes) against reading the agent's sink file.

Needs nginx (nginx-light) and wrk; installs them with apt-get when they are missing.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench-agent"


def env_from(path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LWOLF_")}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            env[k] = v
    env["LWOLF_CACHE_DIR"] = str(OUT / "cache")
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, headers, seconds):
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} answers were not 2xx:\n{out}")
    return rate, float(p99.group(1)) * scale


def library_load(compare, env, path, seconds):
    """Rate and p99 (ms) of GETs made through the library itself, 16 threads."""
    out = subprocess.run([str(compare), "load", "--threads", "16", "--seconds", str(seconds),
                          "--path", path], env=env, capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout.split()
    return float(out[0]), float(out[1])


def start_agent(lwolf, env):
    sock = OUT / "agent.sock"
    proc = subprocess.Popen(
        [str(lwolf), "agent", "--socket", str(sock), "--proxy", "127.0.0.1:0",
         "--sink", str(OUT / "token.json")],
        env=env, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if m and "proxy" in line:
            port = int(m.group(1))
    if port is None:
        proc.kill()
        raise SystemExit("the agent did not say its proxy's port")
    # Keep reading its stderr so that it never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    key = (OUT / "agent.sock.key").read_text().strip()
    while not (OUT / "token.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, sock, port, key


def start_nginx(upstream, token):
    port = free_port()
    target = urlsplit(upstream)
    base = target.path.rstrip("/")
    conf = OUT / "nginx.conf"
    conf.write_text(f"""
worker_processes auto;
daemon off;
pid {OUT}/nginx.pid;
error_log {OUT}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {OUT}/nginx-body;
  proxy_temp_path {OUT}/nginx-proxy;
  upstream api {{ server {target.hostname}:{target.port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location /backoffice/ {{
      proxy_pass http://api{base}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {token}";
    }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(OUT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start: " + (OUT / "nginx-error.log").read_text())


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def socket_read(path):
    conn = UnixHTTPConnection(str(path))
    conn.request("GET", "/v1/token")
    body = conn.getresponse().read()
    conn.close()
    return body


def per_read_us(fn, n):
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main():
    for tool, package in (("nginx", "nginx-light"), ("wrk", "wrk")):
        if not shutil.which(tool):
            subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    env = env_from(sys.argv[1])
    lwolf = Path(sys.argv[2])
    compare = Path(sys.argv[3])
    quick = "--quick" in sys.argv
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "nginx-body").mkdir(parents=True)
    seconds = 2 if quick else 5
    rounds = 2 if quick else 5
    token = subprocess.run([str(lwolf), "token"], env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    upstream = env["LWOLF_API_BASE_URL"].rstrip("/")
    agent, sock, agent_port, key = start_agent(lwolf, env)
    nginx, nginx_port = start_nginx(upstream, token)
    path = "/v1/offices"
    sides = {
        "agent": (f"http://127.0.0.1:{agent_port}/backoffice{path}", [f"Lwolf-Agent-Key: {key}"]),
        "nginx": (f"http://127.0.0.1:{nginx_port}/backoffice{path}", []),
        "direct": (f"{upstream}{path}", [f"Authorization: Bearer {token}"]),
    }
    results = {name: [] for name in [*sides, "library"]}
    try:
        for name, (url, headers) in sides.items():  # warm-up
            wrk(url, headers, 1)
        library_load(compare, env, path, 1)
        for i in range(rounds):
            names = [*sides, "library"]
            order = names if i % 2 == 0 else list(reversed(names))
            for name in order:
                if name == "library":
                    results[name].append(library_load(compare, env, path, seconds))
                else:
                    results[name].append(wrk(*sides[name], seconds))
        reads = 300 if quick else 2000
        sock_us = [per_read_us(lambda: socket_read(sock), reads) for _ in range(rounds)]
        sink = OUT / "token.json"
        file_us = [per_read_us(lambda: sink.read_bytes(), reads) for _ in range(rounds)]
    finally:
        agent.send_signal(signal.SIGTERM)
        nginx.send_signal(signal.SIGQUIT)
        agent.wait(timeout=30)
        nginx.wait(timeout=30)
    med = statistics.median
    rate = {n: med(r for r, _ in results[n]) for n in results}
    p99 = {n: med(p for _, p in results[n]) for n in results}
    ratios = [a[0] / b[0] for a, b in zip(results["agent"], results["nginx"])]
    note = (f"median of {rounds} alternating rounds of {seconds} s, wrk -t2 -c16 on loopback against the "
            f"bench's minimal server; straight to that server: {rate['direct']:.0f} req/s, p99 "
            f"{p99['direct']:.2f} ms; per-round ratio min-max {min(ratios):.2f}-{max(ratios):.2f}")
    print(json.dumps({
        "id": "12.1-agent-proxy-rate",
        "what": "Authenticated GETs through `lwolf agent --proxy` (the library adds the token), keep-alive, loopback",
        "ours": f"{rate['agent']:.0f} req/s",
        "baseline": f"{rate['nginx']:.0f} req/s (nginx 1.22 `proxy_pass` with a fixed `Authorization` header)",
        "ratio": med(ratios), "target": "≥ 0.7x", "met": med(ratios) >= 0.7, "note": note,
    }))
    added_agent = p99["agent"] - p99["direct"]
    added_nginx = p99["nginx"] - p99["direct"]
    print(json.dumps({
        "id": "12.2-agent-proxy-p99",
        "what": "p99 latency the proxy adds to a GET sent straight to the server (wrk, 16 connections)",
        "ours": f"{added_agent:.2f} ms",
        "baseline": f"{added_nginx:.2f} ms (nginx, the same way)",
        "ratio": added_agent / added_nginx if added_nginx > 0 else None,
        "target": "< 1 ms", "met": added_agent < 1.0,
        "note": f"p99 medians: agent {p99['agent']:.2f} ms, nginx {p99['nginx']:.2f} ms, straight {p99['direct']:.2f} ms",
    }))
    library_ratios = [a[0] / b[0] for a, b in zip(results["agent"], results["library"])]
    print(json.dumps({
        "id": "12.4-agent-proxy-vs-library",
        "what": "The same GETs: through `lwolf agent --proxy` (wrk, 16 connections) against straight through the library (16 threads, one client)",
        "ours": f"{rate['agent']:.0f} req/s",
        "baseline": f"{rate['library']:.0f} req/s (`Client::get` from 16 threads)",
        "ratio": med(library_ratios), "target": "none set", "met": None,
        "note": (f"p99: {p99['agent']:.2f} ms through the agent, {p99['library']:.2f} ms through the library; "
                 f"per-round ratio min-max {min(library_ratios):.2f}-{max(library_ratios):.2f}"),
    }))
    print(json.dumps({
        "id": "12.3-agent-socket-token",
        "what": "The token read over the agent's socket (`GET /v1/token`, a new connection each time)",
        "ours": f"{med(sock_us):.1f} µs/read",
        "baseline": f"{med(file_us):.1f} µs/read (reading the agent's `--sink` file)",
        "ratio": med(sock_us) / med(file_us), "target": "none set", "met": None,
        "note": f"median of {rounds} rounds of {reads} reads each, from Python (http.client on AF_UNIX; open/read)",
    }))


if __name__ == "__main__":
    main()
