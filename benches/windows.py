"""Rows 10.x: the Windows DLL under Wine against the Linux library, in the same run.

    python3 benches/windows.py COMPARE_SERVER_ENV_FILE [--quick]   # JSON rows on stdout

Builds benches/windows/wine_linux.c twice (gcc against target/release/liblwolf_auth.so, and
mingw-w64 against target/dist/windows-x64, which `cargo xtask windows` makes), then runs the
two in alternating rounds against the same bench server and reports the medians and the
median of the per-round ratios. Wine's numbers are not Windows': they are the library's cost
on Wine's Win32 API, on this machine.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench-windows"
DIST = ROOT / "target" / "dist" / "windows-x64"


def env_from(path):
    env = dict(os.environ)
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            env[k] = v
    env["WINEPREFIX"] = str(ROOT / "target" / "windows" / "wine")
    env["WINEDEBUG"] = "-all"
    env["LWOLF_CACHE_DIR"] = ""
    return env


def measure(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    values = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return float(values["token_ns"]), float(values["get_rps"])


def main():
    env = env_from(sys.argv[1])
    quick = "--quick" in sys.argv
    OUT.mkdir(parents=True, exist_ok=True)
    source = ROOT / "benches" / "windows" / "wine_linux.c"
    linux = OUT / "wine_linux"
    subprocess.run(["cc", "-std=c99", "-O2", f"-I{ROOT / 'include'}", str(source), "-o", str(linux),
                    f"-L{ROOT / 'target' / 'release'}", "-llwolf_auth",
                    f"-Wl,-rpath,{ROOT / 'target' / 'release'}"], check=True)
    exe = OUT / "wine_linux.exe"
    subprocess.run(["x86_64-w64-mingw32-gcc", "-std=c99", "-O2", f"-I{DIST / 'include'}", str(source),
                    "-o", str(exe), f"-L{DIST / 'lib'}", "-llwolf_auth"], check=True)
    shutil.copy(DIST / "bin" / "lwolf_auth.dll", OUT / "lwolf_auth.dll")
    window = "100" if quick else "300"
    rounds = 3 if quick else 7
    sides = {"linux": [], "wine": []}
    for i in range(rounds):
        order = ["linux", "wine"] if i % 2 == 0 else ["wine", "linux"]
        for side in order:
            cmd = [str(linux), window] if side == "linux" else ["/usr/lib/wine/wine64", str(exe), window]
            sides[side].append(measure(cmd, env))
    token_ratios = [w[0] / l[0] for w, l in zip(sides["wine"], sides["linux"])]
    get_ratios = [w[1] / l[1] for w, l in zip(sides["wine"], sides["linux"])]
    med = statistics.median
    note = f"median of {rounds} alternating rounds; Wine 8.0 is not Windows: its numbers are the library on Wine's Win32 API on this machine"
    print(json.dumps({
        "id": "10.1-wine-token",
        "what": "Cached token, C `lwolf_client_token()`, 1 thread: the Windows DLL under Wine",
        "ours": f"{med(w[0] for w in sides['wine']):.1f} ns/call",
        "baseline": f"{med(l[0] for l in sides['linux']):.1f} ns/call (the Linux library, same program built with gcc)",
        "ratio": med(token_ratios), "target": "none (Wine is not Windows)", "met": None, "note": note,
    }))
    print(json.dumps({
        "id": "10.2-wine-get",
        "what": "Authenticated GETs, keep-alive, loopback, C `lwolf_client_request()`: the Windows DLL under Wine",
        "ours": f"{med(w[1] for w in sides['wine']):.0f} req/s",
        "baseline": f"{med(l[1] for l in sides['linux']):.0f} req/s (the Linux library, same program built with gcc)",
        "ratio": med(get_ratios), "target": "none (Wine is not Windows)", "met": None, "note": note,
    }))
    dll = (DIST / "bin" / "lwolf_auth.dll").stat().st_size
    so = ROOT / "target" / "release" / "liblwolf_auth.so"
    stripped = OUT / "liblwolf_auth.so.stripped"
    subprocess.run(["strip", "--strip-unneeded", "-o", str(stripped), str(so)], check=True)
    print(json.dumps({
        "id": "10.3-dll-size",
        "what": "Size of the library, stripped: `lwolf_auth.dll` (x86_64-pc-windows-gnu, rustls, ring, the fleet cache)",
        "ours": f"{dll / 1e6:.2f} MB",
        "baseline": f"{stripped.stat().st_size / 1e6:.2f} MB (liblwolf_auth.so, Linux, the same features)",
        "ratio": dll / stripped.stat().st_size, "target": "none", "met": None,
        "note": "the DLL carries its own std (built with -Zbuild-std) and the version resource",
    }))


if __name__ == "__main__":
    main()
