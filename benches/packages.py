"""Rows 11.x: the release artifacts of `cargo xtask dist` (target/dist/): their sizes, and the
time from installing one to a first token, side by side with installing from source.

    python3 benches/packages.py [--quick]   # JSON rows on stdout

Needs target/dist (cargo xtask dist), target/release/lwolf (the sandbox), python3, npm and
cargo. From source means what a user without the artifacts does: a cold `cargo build` of the
library (the crates already downloaded: the registry's speed is not ours to measure), then the
binding. Each side is measured once: a cold build takes minutes, and its noise is seconds.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "target" / "dist"
OUT = ROOT / "target" / "bench-packages"


def version():
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise SystemExit("no version in Cargo.toml")


def mb(path):
    return path.stat().st_size / 1e6


def sandbox():
    out = subprocess.run([str(ROOT / "target" / "release" / "lwolf"), "sandbox", "--detach"],
                         capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def timed(cmd, **kwargs):
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.monotonic() - started


def first_token_python(venv, env):
    return timed([str(venv / "bin" / "python"), "-c",
                  "import lwolf_auth; assert len(lwolf_auth.Client.from_env().token()) > 20"],
                 env=env, cwd=OUT)


def first_token_node(project, env):
    return timed(["node", "-e",
                  "const { Client } = require('lwolf-auth');"
                  "Client.fromEnv().token().then((t) => { if (t.length < 20) process.exit(1); });"],
                 env=env, cwd=project)


def main():
    v = version()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    wheels = sorted(DIST.glob(f"lwolf_auth-{v}-py3-none-manylinux_*_x86_64.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one manylinux wheel in {DIST}: run cargo xtask dist")
    wheel = wheels[0]
    tag = wheel.name.split("-py3-none-")[1].removesuffix(".whl")
    sdist = DIST / f"lwolf_auth-{v}.tar.gz"
    npm = DIST / f"lwolf-auth-{v}.tgz"
    go_zip = DIST / "goproxy" / "github.com/lwolf-auth/lwolf-auth/bindings/go/@v" / f"v{v}.zip"
    debs = [DIST / f"{p}_{v}-1_amd64.deb" for p in ("liblwolf-auth0", "liblwolf-auth-dev", "lwolf-cli")]
    archive = DIST / f"lwolf-auth-{v}-linux-x64.tar.gz"
    for f in [sdist, npm, go_zip, archive, *debs]:
        if not f.is_file():
            raise SystemExit(f"{f} is missing: run cargo xtask dist")

    # The Go module without what it bundles: its sources alone, zipped the same way.
    bare = OUT / "go-bare.zip"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["unzip", "-q", str(go_zip), "-d", tmp], check=True)
        for extra in Path(tmp).rglob("lib"):
            shutil.rmtree(extra)
        subprocess.run(f"cd {tmp} && python3 -m zipfile -c {bare} $(ls -A)", shell=True, check=True)

    rows = [
        ("11.1-size-wheel", f"Size: the Python wheel ({tag}, the library inside)",
         f"{mb(wheel):.2f} MB", f"{mb(sdist):.2f} MB (the sdist: the Rust sources, cargo builds them)",
         mb(wheel) / mb(sdist), ""),
        ("11.2-size-npm", "Size: the npm package (linux-x64 and win32-x64 libraries inside)",
         f"{mb(npm):.2f} MB", "-", None, "both platforms' libraries, compressed; Node loads one"),
        ("11.3-size-go", "Size: the Go module's zip with the static linux/amd64 library and the header",
         f"{mb(go_zip):.2f} MB", f"{mb(bare):.2f} MB (the module's sources alone)",
         mb(go_zip) / mb(bare), "the archive is 31 MB unpacked in the module cache (debug info stripped)"),
        ("11.4-size-debs", "Size: the Debian packages liblwolf-auth0 / liblwolf-auth-dev / lwolf-cli",
         " / ".join(f"{mb(d):.2f} MB" for d in debs), "-", None, "xz-compressed"),
        ("11.5-size-archive", "Size: the relocatable Linux archive (bin/lwolf, headers, .so, .a, pkg-config, CMake)",
         f"{mb(archive):.2f} MB", "-", None, ""),
    ]
    for id_, what, ours, baseline, ratio, note in rows:
        print(json.dumps({"id": id_, "what": what, "ours": ours, "baseline": baseline,
                          "ratio": ratio, "target": "none set", "met": None, "note": note}), flush=True)

    lwolf = sandbox()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LWOLF_", "CARGO"))}
    env.update(lwolf)
    try:
        # Python: the wheel, against pip install ./bindings/python with a cold target dir.
        for side in ("wheel", "source"):
            venv = OUT / f"venv-{side}"
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
            if side == "source":
                subprocess.run(pip + ["setuptools", "wheel"], check=True, env=env)
                source_env = dict(env, CARGO_TARGET_DIR=str(OUT / "cargo-python"),
                                  PATH=os.environ["PATH"])
                install = timed(pip + ["--no-build-isolation", str(ROOT / "bindings" / "python")],
                                env=source_env)
            else:
                install = timed(pip + [str(wheel)], env=env)
            total = install + first_token_python(venv, env)
            if side == "wheel":
                wheel_total = total
            else:
                source_total = total
        print(json.dumps({
            "id": "11.6-python-install",
            "what": "Time from `pip install` to a first token (a fresh venv, the sandbox): the wheel",
            "ours": f"{wheel_total:.1f} s",
            "baseline": f"{source_total:.1f} s (`pip install ./bindings/python`: a cold cargo build of the library, crates downloaded)",
            "ratio": wheel_total / source_total, "target": "none set", "met": None,
            "note": "one run each; the venv made beforehand on both sides",
        }), flush=True)

        # Node: the npm package, against a cold cargo build and npm install ./bindings/node.
        totals = {}
        for side in ("package", "source"):
            project = OUT / f"node-{side}"
            project.mkdir()
            (project / "package.json").write_text('{"name":"app","private":true}\n')
            npm_install = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"]
            run_env = dict(env)
            if side == "package":
                install = timed(npm_install + [str(npm)], cwd=project, env=env)
            else:
                build_env = dict(env, CARGO_TARGET_DIR=str(OUT / "cargo-node"), PATH=os.environ["PATH"])
                install = timed(["cargo", "build", "--release", "-p", "lwolf-auth-ffi"],
                                cwd=ROOT, env=build_env)
                install += timed(npm_install + [str(ROOT / "bindings" / "node")], cwd=project, env=env)
                run_env["LWOLF_AUTH_LIB"] = str(OUT / "cargo-node" / "release" / "liblwolf_auth.so")
            totals[side] = install + first_token_node(project, run_env)
        print(json.dumps({
            "id": "11.7-node-install",
            "what": "Time from `npm install` to a first token (an empty project, the sandbox): the npm package",
            "ours": f"{totals['package']:.1f} s",
            "baseline": f"{totals['source']:.1f} s (a cold `cargo build --release -p lwolf-auth-ffi`, then `npm install ./bindings/node`)",
            "ratio": totals["package"] / totals["source"], "target": "none set", "met": None,
            "note": "one run each; koffi from the npm registry on both sides",
        }), flush=True)
    finally:
        os.kill(int(lwolf["LWOLF_SANDBOX_PID"]), 15)


if __name__ == "__main__":
    main()
