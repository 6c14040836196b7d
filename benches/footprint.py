"""Footprint rows of BENCHMARKS.md, as JSON lines on stdout (see benches/report.py):

  5.1 stripped size of liblwolf_auth.so   vs libcurl + libssl + libcrypto (what C users link)
  5.2 stripped size of a statically linked C example (examples-c `token`, static build)
  5.3 peak RSS of the C `threads` example  vs the same program on libcurl (threads_curl.c)
  5.4 most threads alive in it             vs the same
  5.5 crates in the library's dependency tree (no features) vs ureq's own tree

    python3 benches/footprint.py ROOT EXAMPLES_BUILD_DIR THREADS_CURL_BINARY

The two `threads` programs need the LWOLF_* variables of a running sandbox (they read its
/_sandbox/stats or fetch a token from it). Runs are interleaved; medians are reported.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def emit(row):
    print(json.dumps(row, ensure_ascii=False), flush=True)
    print("%-24s ours %s baseline %s" % (row["id"], row["ours"], row["baseline"]), file=sys.stderr)


def stripped_size(path):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "stripped")
        subprocess.run(["strip", "--strip-all", "-o", out, path], check=True)
        return os.path.getsize(out)


def system_lib(name):
    """The file a shared library name resolves to, from the loader cache."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.split(" ", 1)[0] == name and "=>" in line:
            return os.path.realpath(line.split("=>")[-1].strip())
    raise SystemExit("%s not found by ldconfig" % name)


def kib(n):
    return "%.0f KiB" % (n / 1024) if n < 1 << 20 else "%.2f MiB" % (n / (1 << 20))


def run_measured(argv):
    """(peak RSS in KiB from /usr/bin/time -v, most threads seen in /proc, exit code)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", t.name] + argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        most = 0
        child = None
        deadline = time.monotonic() + 60
        # Sample the program's thread count (it is time's child) until it exits.
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("%s did not finish within 60 s" % argv[0])
            if child is None:
                try:
                    with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                        kids = f.read().split()
                    child = int(kids[0]) if kids else None
                except OSError:
                    pass
            if child is not None:
                try:
                    most = max(most, len(os.listdir("/proc/%d/task" % child)))
                except OSError:
                    pass
        text = open(t.name).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return rss, most, proc.returncode


def cargo_tree_count(root, args):
    out = subprocess.run(
        ["cargo", "tree", "-e", "normal", "--prefix", "none"] + args,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    crates = {line.replace(" (*)", "").strip() for line in out.splitlines() if line.strip()}
    return len(crates)


def main():
    root, build, threads_curl = sys.argv[1:4]
    lib = os.path.join(root, "target", "release", "liblwolf_auth.so")

    ours = stripped_size(lib)
    parts = ["libcurl.so.4", "libssl.so.3", "libcrypto.so.3"]
    base = sum(stripped_size(system_lib(p)) for p in parts)
    emit(
        {
            "id": "5.1-size-so",
            "what": "Stripped `liblwolf_auth.so` (release, no features)",
            "ours": kib(ours),
            "baseline": "%s (libcurl.so.4 + libssl.so.3 + libcrypto.so.3, Debian, stripped)" % kib(base),
            "ratio": ours / base,
            "target": "none set",
            "met": None,
            "note": "ours holds HTTP/1.1, rustls + ring, the web roots, JSON and the client; "
            "libcurl pulls in further libraries (nghttp2, libssh2, ldap, ...) not counted",
        }
    )

    static = os.path.join(build, "static", "token")
    # The same program linked without --gc-sections (the Makefile passes it), to show what it saves.
    with tempfile.TemporaryDirectory() as d:
        gc = os.path.join(d, "token")
        subprocess.run(
            ["cc", "-std=c99", "-O1", "-pthread", "-I" + os.path.join(root, "include"),
             os.path.join(root, "examples-c", "token.c"), "-o", gc,
             os.path.join(root, "target", "release", "liblwolf_auth.a"),
             "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"],
            check=True,
        )
        gc_size = stripped_size(gc)
    emit(
        {
            "id": "5.2-size-static",
            "what": "Stripped statically linked C example (`examples-c/token.c` + liblwolf_auth.a)",
            "ours": kib(stripped_size(static)),
            "baseline": "-",
            "ratio": None,
            "target": "none set",
            "met": None,
            "note": "built by examples-c/Makefile (static); libc and libgcc_s stay dynamic; "
            "linked without the Makefile's -Wl,--gc-sections it is %s" % kib(gc_size),
        }
    )

    threads = os.path.join(build, "dynamic", "threads")
    runs = 3 if "--quick" in sys.argv else 7
    rss_o, rss_b, thr_o, thr_b = [], [], [], []
    for i in range(runs):
        order = [(threads, rss_o, thr_o), (threads_curl, rss_b, thr_b)]
        if i % 2:
            order.reverse()
        for argv, rss, thr in order:
            r, t, code = run_measured([argv])
            if code != 0:
                raise SystemExit("%s failed (exit %d)" % (argv, code))
            rss.append(r)
            thr.append(t)
    mo, mb = statistics.median(rss_o), statistics.median(rss_b)
    emit(
        {
            "id": "5.3-rss-threads",
            "what": "Peak RSS of the C `threads` example (16 threads, 3200 token reads, 48 GETs)",
            "ours": "%.1f MiB" % (mo / 1024),
            "baseline": "%.1f MiB (the same program on libcurl + a mutex cache: benches/c/threads_curl.c)"
            % (mb / 1024),
            "ratio": mo / mb,
            "target": "none set",
            "met": None,
            "note": "`/usr/bin/time -v` maximum RSS, median of %d interleaved runs each" % runs,
        }
    )
    emit(
        {
            "id": "5.4-threads",
            "what": "Most threads alive in the C `threads` example",
            "ours": "%d" % max(thr_o),
            "baseline": "%d (threads_curl.c)" % max(thr_b),
            "ratio": max(thr_o) / max(thr_b),
            "target": "main + 16 workers, none of the library's own",
            "met": max(thr_o) <= 17,
            "note": "/proc/<pid>/task sampled in a busy loop over %d runs each; see 5.6 for the "
            "threads left while idle" % runs,
        }
    )

    ours_deps = cargo_tree_count(root, ["--no-default-features"])
    ureq_deps = cargo_tree_count(root, ["-p", "ureq"])
    emit(
        {
            "id": "5.5-deps",
            "what": "Crates in the library's normal dependency tree (no features, itself included)",
            "ours": "%d" % ours_deps,
            "baseline": "%d (ureq with rustls, as resolved here, itself included)" % ureq_deps,
            "ratio": ours_deps / ureq_deps,
            "target": "none set",
            "met": None,
            "note": "`cargo tree -e normal --prefix none`, unique crates",
        }
    )


if __name__ == "__main__":
    main()
