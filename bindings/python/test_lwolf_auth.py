"""Tests of the Python bindings against the sandbox process.

    cd bindings/python && python3 -m unittest -v test_lwolf_auth

The sandbox is started as a process: the binary in LWOLF_SANDBOX_BIN, else
target/debug/lwolf-sandbox of this source tree, else `cargo run -p lwolf-sandbox`.
The library is found as lwolf_auth.py finds it (LWOLF_AUTH_LIB first). With
LWOLF_EXPECT_TEST_PANIC=1 (a library built with the `ffi-test-panic` feature) the panic
boundary is checked too. `cargo test --all-features` runs all this (tests/python.rs).
"""

import ctypes
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import lwolf_auth  # noqa: E402
from lwolf_auth import _lib  # noqa: E402  (the raw functions, for misuse tests)


class Sandbox:
    """The sandbox example, run as a process until stop() closes its stdin."""

    def __init__(self, *args):
        binary = os.environ.get("LWOLF_SANDBOX_BIN")
        default = ROOT / "target" / "debug" / "lwolf-sandbox"
        if binary:
            cmd = [binary]
        elif default.exists():
            cmd = [str(default)]
        else:
            cmd = ["cargo", "run", "--quiet", "-p", "lwolf-sandbox", "--"]
        cmd += ["--port", "0", "--exit-on-stdin-eof", *args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(ROOT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        watchdog = threading.Timer(300, self.proc.kill)
        watchdog.start()
        try:
            self.env = {}
            while len(self.env) < 6:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("the sandbox exited before printing its settings: %r" % cmd)
                # `export NAME=value`, quoted for a shell where it needs it.
                words = shlex.split(line)
                if len(words) == 2 and words[0] == "export" and words[1].startswith("LWOLF_"):
                    name, _, value = words[1].partition("=")
                    self.env[name] = value
        finally:
            watchdog.cancel()
        self.api_base_url = self.env["LWOLF_API_BASE_URL"]
        self.origin = re.match(r"^(https?://[^/]+)", self.api_base_url).group(1)

    def settings(self, **overrides):
        s = {
            "token_url": self.env["LWOLF_TOKEN_URL"],
            "api_base_url": self.env["LWOLF_API_BASE_URL"],
            "client_id": self.env["LWOLF_CLIENT_ID"],
            "client_secret": self.env["LWOLF_CLIENT_SECRET"],
        }
        s.update(overrides)
        return s

    def stats(self):
        """The sandbox's counters, read without the library."""
        with urllib.request.urlopen(self.origin + "/_sandbox/stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


SANDBOX = None


def setUpModule():
    global SANDBOX
    SANDBOX = Sandbox()


def tearDownModule():
    SANDBOX.stop()


class ModuleTest(unittest.TestCase):
    def test_the_type_stub_covers_the_public_names(self):
        import ast

        stub = Path(lwolf_auth.__file__).with_suffix(".pyi")
        tree = ast.parse(stub.read_text())
        names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        names |= {t.id for n in tree.body if isinstance(n, ast.AnnAssign) for t in [n.target]}
        self.assertEqual(sorted(set(lwolf_auth.__all__) - names), [])
        for cls in ("Client", "Response", "Config"):
            stubbed = {f.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls
                       for f in n.body if isinstance(f, ast.FunctionDef)}
            public = {m for m in vars(getattr(lwolf_auth, cls)) if not m.startswith("_")}
            self.assertEqual(sorted(public - stubbed - {"headers", "content", "status_code", "url"}), [], cls)

    def test_version_and_status_names(self):
        self.assertRegex(lwolf_auth.version(), r"^\d+\.\d+\.\d+")
        self.assertEqual(lwolf_auth.status_name(0), "LWOLF_OK")
        self.assertEqual(lwolf_auth.status_name(3), "LWOLF_ERR_INVALID_CREDENTIALS")
        self.assertEqual(lwolf_auth.status_name(11), "LWOLF_ERR_INTERNAL")
        self.assertEqual(lwolf_auth.status_name(12), "LWOLF_ERR_ABORTED")
        self.assertEqual(lwolf_auth.status_name(13), "LWOLF_ERR_DEADLINE")
        self.assertEqual(lwolf_auth.status_name(14), "LWOLF_UNKNOWN_STATUS")
        self.assertEqual(lwolf_auth.status_name(2**32 - 1), "LWOLF_UNKNOWN_STATUS")

    def test_one_exception_class_per_status(self):
        for status in range(1, 14):
            cls = lwolf_auth._ERRORS[status]
            self.assertTrue(issubclass(cls, lwolf_auth.LwolfError))
            self.assertEqual(cls.status, status)
        self.assertEqual(len(set(lwolf_auth._ERRORS.values())), 13)
        self.assertTrue(issubclass(lwolf_auth.Deadline, TimeoutError))

    def test_every_header_function_is_declared(self):
        """argtypes and restype for every function of the header: ctypes would otherwise
        truncate returned pointers to int."""
        header = (ROOT / "include" / "lwolf_auth.h").read_text()
        in_header = set(re.findall(r"\b(lwolf_[a-z_]+)\(", header))
        declared = {name for name, _, _ in lwolf_auth.native._SIGNATURES}
        self.assertEqual(in_header, declared)
        for name, restype, argtypes in lwolf_auth.native._SIGNATURES:
            fn = getattr(_lib, name)
            self.assertIs(fn.restype, restype, name)
            self.assertEqual(list(fn.argtypes), list(argtypes), name)
        pointer_returning = ["lwolf_response_body", "lwolf_response_header",
                             "lwolf_last_error_message", "lwolf_version", "lwolf_status_name"]
        for name in pointer_returning:
            self.assertNotEqual(getattr(_lib, name).restype, ctypes.c_int, name)


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.client = lwolf_auth.Client(**SANDBOX.settings())

    def tearDown(self):
        self.client.close()

    def test_token_and_info(self):
        token = self.client.token()
        self.assertGreater(len(token), 20)
        self.assertEqual(token, self.client.token())
        info = self.client.token_info()
        self.assertRegex(info.fingerprint, r"^[0-9a-f]{12}$")
        self.assertGreater(info.expires_at, time.time())
        self.assertLessEqual(info.refresh_at, info.usable_until)
        self.assertLessEqual(info.usable_until, info.expires_at)
        self.assertGreater(info.lifetime, 0)
        self.assertNotIn(token, repr(info))

    def test_get(self):
        r = self.client.request("GET", "/v1/transactions")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.ok)
        self.assertIn("data", r.json())
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        self.assertEqual(r.header("content-type"), r.header("CONTENT-TYPE"))
        self.assertIsNone(r.header("X-No-Such-Header"))
        self.assertTrue(all(name == name.lower() for name, _ in r.headers.pairs))

    def test_post_json_body(self):
        r = self.client.request("POST", "/v1/transactions", json={"address": "1 Main St"})
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json()["address"], "1 Main St")
        r2 = self.client.post("/v1/transactions", data=b'{"address": "2 Main St"}')
        self.assertEqual(r2.status_code, 201, r2.text)
        with self.assertRaises(TypeError):
            self.client.post("/v1/transactions", json={}, data=b"{}")

    def echo(self, method, **kwargs):
        """What the sandbox received, through /_sandbox/echo."""
        r = self.client.request(method, SANDBOX.origin + "/_sandbox/echo", **kwargs)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    def test_headers_query_and_body_arrive_as_given(self):
        params = [("$filter", "statusCode eq 'A'"), ("q", "a+b&c=d#e%"), ("cafe", "café"), ("empty", "")]
        got = self.echo(
            "PATCH",
            params=params,
            headers={"If-Match": '"v7"', "X-Two": "2"},
            data=b"\x00\x01binary\xff",
            content_type="application/octet-stream",
            timeout=5,
        )
        self.assertEqual(got["method"], "PATCH")
        self.assertEqual([tuple(p) for p in got["query"]], params)
        headers = dict((n, v) for n, v in got["headers"])
        self.assertEqual(headers["if-match"], '"v7"')
        self.assertEqual(headers["x-two"], "2")
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(got["body_len"], 9)
        # A mapping or pairs for params; numbers and booleans are their text.
        got = self.echo("GET", params={"$top": 25, "deleted": False})
        self.assertEqual([tuple(p) for p in got["query"]], [("$top", "25"), ("deleted", "false")])

    def test_refused_headers(self):
        for name, value in [("Authorization", "Bearer mine"), ("X-Evil", "a\r\nInjected: 1"), ("bad name", "x")]:
            with self.assertRaises(lwolf_auth.InvalidArgument) as caught:
                self.client.get("/v1/offices", headers={name: value})
            self.assertNotIn("Injected", str(caught.exception))

    def test_a_response_shaped_like_requests(self):
        r = self.client.get("/v1/transactions", params={"$top": "1"})
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.ok)
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        self.assertEqual(r.headers["content-type"], r.headers["CONTENT-TYPE"])
        self.assertIn("content-type", r.headers)
        self.assertIsInstance(r.content, bytes)
        self.assertEqual(r.text, r.content.decode())
        r.raise_for_status()
        missing = self.client.get("/v1/transactions/no-such-id")
        self.assertFalse(missing.ok)
        with self.assertRaises(lwolf_auth.HTTPError) as caught:
            missing.raise_for_status()
        self.assertEqual(caught.exception.http_status, 404)
        self.assertIs(caught.exception.response, missing)

    def test_stream_to_a_file(self):
        import io

        whole = self.client.get("/v1/transactions")
        out = io.BytesIO()
        streamed = self.client.get("/v1/transactions", stream_to=out)
        self.assertEqual(streamed.status_code, 200)
        self.assertEqual(streamed.content, b"")
        self.assertEqual(out.getvalue(), whole.content)

        class Full:
            def write(self, data):
                raise OSError("disk full")

        with self.assertRaises(OSError) as caught:
            self.client.get("/v1/transactions", stream_to=Full())
        self.assertIn("disk full", str(caught.exception))

    def test_for_api_shares_the_token(self):
        fingerprint = self.client.token_info().fingerprint
        before = SANDBOX.stats()["token_requests"]
        with self.client.for_api(SANDBOX.api_base_url) as other:
            self.assertEqual(other.token_info().fingerprint, fingerprint)
            self.assertEqual(other.get("/v1/offices").status_code, 200)
        self.assertEqual(SANDBOX.stats()["token_requests"], before)
        with self.assertRaises(lwolf_auth.ConfigError):
            self.client.for_api("http://example.com/api")

    def test_the_subscription_key_is_sent_and_never_shown(self):
        key = "py-subscription-K3Y"
        with lwolf_auth.Client(**SANDBOX.settings(subscription_key=key)) as client:
            r = client.get(SANDBOX.origin + "/_sandbox/echo")
            self.assertTrue(r.json()["has_subscription_key"])
            self.assertNotIn(key, repr(client) + repr(r) + r.text)

    def test_every_status_is_a_response(self):
        r = self.client.get("/v1/transactions/no-such-id")
        self.assertEqual(r.status, 404)
        self.assertFalse(r.ok)

    def test_absolute_url_on_the_same_origin(self):
        r = self.client.get(SANDBOX.origin + "/_sandbox/stats")
        self.assertEqual(r.status, 200)
        self.assertIn("token_requests", r.json())

    def test_token_is_never_sent_to_another_origin(self):
        with self.assertRaises(lwolf_auth.InvalidArgument):
            self.client.get("https://attacker.example/steal")

    def test_invalidate_fetches_a_new_token(self):
        before = SANDBOX.stats()["token_requests"]
        self.client.token()
        self.client.invalidate()
        self.client.token()
        self.assertEqual(SANDBOX.stats()["token_requests"], before + 2)

    def test_for_tenant_outlives_parent(self):
        parent = lwolf_auth.Client(**SANDBOX.settings())
        tenant = parent.for_tenant("tenant-9")
        parent_token = parent.token()
        parent.close()
        self.assertNotEqual(tenant.token(), parent_token)
        r = tenant.get("/v1/offices")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Sandbox-Lwt-Client-Id"), "tenant-9")
        tenant.close()
        with self.assertRaises(lwolf_auth.InvalidArgument):
            self.client.for_tenant("")

    def test_context_manager_and_close(self):
        with lwolf_auth.Client(**SANDBOX.settings()) as c:
            self.assertTrue(c.token())
        self.assertTrue(c.closed)
        c.close()  # idempotent
        # A closed client hands NULL to the library, which says so.
        with self.assertRaises(lwolf_auth.InvalidArgument) as cm:
            c.token()
        self.assertIn("NULL", str(cm.exception))
        with self.assertRaises(lwolf_auth.InvalidArgument):
            c.get("/v1/offices")
        # An exception in the block closes the client too, and goes on.
        with self.assertRaises(ValueError):
            with lwolf_auth.Client(**SANDBOX.settings()) as d:
                self.assertIs(type(d), lwolf_auth.Client)
                raise ValueError("from the block")
        self.assertTrue(d.closed)

    def test_from_env(self):
        saved = dict(os.environ)
        try:
            for name in list(os.environ):
                if name.startswith("LWOLF_"):
                    del os.environ[name]
            os.environ.update(SANDBOX.env)
            with lwolf_auth.Client.from_env(timeout_ms=5000) as c:
                self.assertEqual(c.get("/v1/employees").status, 200)
        finally:
            os.environ.clear()
            os.environ.update(saved)


class ThreadsTest(unittest.TestCase):
    def test_eight_threads_share_one_token_request(self):
        sandbox = Sandbox()
        try:
            client = lwolf_auth.Client(**sandbox.settings())
            tokens, errors = [], []
            start = threading.Barrier(8)

            def work():
                try:
                    start.wait()
                    for _ in range(50):
                        tokens.append(client.token())
                    for _ in range(2):
                        self.assertEqual(client.get("/v1/transactions").status, 200)
                except Exception as e:  # noqa: BLE001 -- reported below
                    errors.append(e)

            threads = [threading.Thread(target=work) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            self.assertEqual(len(tokens), 400)
            self.assertEqual(len(set(tokens)), 1)
            self.assertEqual(sandbox.stats()["token_requests"], 1)
            client.close()
        finally:
            sandbox.stop()


class LoggingTest(unittest.TestCase):
    def test_records_go_to_the_lwolf_auth_logger(self):
        client = lwolf_auth.Client(**SANDBOX.settings())
        with self.assertLogs("lwolf_auth", level=lwolf_auth.TRACE) as logs:
            token = client.token()
            client.get("/v1/transactions")
        client.close()
        levels = {(r.levelno, r.getMessage().split(" ")[0]) for r in logs.records}
        self.assertIn((logging.INFO, "token"), levels)
        self.assertTrue(any(r.levelno == lwolf_auth.TRACE and r.getMessage().startswith("POST ")
                            for r in logs.records), logs.output)
        self.assertTrue(any("fetched, lifetime" in r.getMessage() for r in logs.records))
        for record in logs.records:
            self.assertNotIn(token, record.getMessage())
            self.assertNotIn(SANDBOX.settings()["client_secret"], record.getMessage())

    def test_each_retry_is_a_warning(self):
        # Nothing listens there: the attempt fails, and its retry is logged at WARNING, so a
        # host that logs at WARNING sees a failing gateway.
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = lwolf_auth.Client(**SANDBOX.settings(
            token_url="http://127.0.0.1:%d/oauth/token" % port, max_retries=1, retry_base_ms=1,
            retry_max_ms=5))
        with self.assertLogs("lwolf_auth", level=logging.WARNING) as logs:
            with self.assertRaises(lwolf_auth.TransportError):
                client.token()
        client.close()
        self.assertTrue(any(r.levelno == logging.WARNING and "retry 1 of 1" in r.getMessage()
                            for r in logs.records), logs.output)


class KeysTest(unittest.TestCase):
    """private_key_jwt and DPoP through the Python surface, against the sandbox."""

    def test_private_key_jwt(self):
        keys = ROOT / "test-support" / "keys"
        sandbox = Sandbox("--client-key", str(keys / "rsa-public.pem"))
        try:
            settings = sandbox.settings(client_auth="private_key_jwt",
                                        private_key_file=str(keys / "rsa-pkcs1.pem"),
                                        assertion_alg="PS256")
            del settings["client_secret"]
            client = lwolf_auth.Client(**settings)
            self.assertEqual(client.get("/v1/offices").status_code, 200)
            self.assertEqual(client.token_info().token_type, "Bearer")
            client.close()
            with self.assertRaises(lwolf_auth.ConfigError) as caught:
                lwolf_auth.Client(**dict(settings, private_key_file=str(keys / "ec-p256-pkcs8.pem")))
            self.assertIn("not a usable RSA private key", str(caught.exception))
        finally:
            sandbox.stop()

    def test_dpop_bound_tokens_and_auth_headers(self):
        sandbox = Sandbox("--dpop-nonce")
        try:
            client = lwolf_auth.Client(**sandbox.settings(dpop=True))
            self.assertEqual(client.get("/v1/offices").status_code, 200)
            info = client.token_info()
            self.assertEqual(info.token_type, "DPoP")
            token = client.token()
            url = sandbox.api_base_url + "/v1/offices"
            headers = client.auth_headers("GET", url)
            self.assertEqual(headers["Authorization"], "DPoP " + token)
            self.assertEqual(headers["DPoP"].count("."), 2)
            # Sent with urllib: the sandbox takes the proof (its nonce was learnt already).
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.assertEqual(resp.status, 200)
            client.dpop_nonce(url, "stale")
            self.assertNotIn(token, repr(info))
            client.close()
        finally:
            sandbox.stop()


class _Api401:
    """A local API that answers 401 to the first ``fail`` requests, then 200, and records the
    Authorization header (``seen``) and the request id (``ids``) of each."""

    def __init__(self, fail):
        import http.server

        seen = self.seen = []
        ids = self.ids = []
        remaining = self.remaining = [fail]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                ids.append(self.headers.get("X-Request-ID"))
                status = 401 if remaining[0] > 0 else 200
                remaining[0] -= 1
                body = b'{"ok": true}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.url = self.base + "/v1/offices"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class AdaptersTest(unittest.TestCase):
    """RequestsAuth and HttpxAuth: the token on their requests, a 401 renewed once."""

    def check(self, send):
        sandbox = Sandbox()
        api = _Api401(fail=1)
        try:
            # The adapters act on requests to the client's own API only.
            client = lwolf_auth.Client(**sandbox.settings(api_base_url=api.base))
            first = client.token()
            # The first answer is a 401: renewed, sent once more with the new token.
            self.assertEqual(send(client, api.url), 200)
            self.assertEqual(len(api.seen), 2)
            self.assertEqual(api.seen[0], "Bearer " + first)
            self.assertNotEqual(api.seen[1], api.seen[0])
            self.assertEqual(api.seen[1], "Bearer " + client.token())
            self.assertEqual(sandbox.stats()["token_requests"], 2)
            # Another 401 from that API within 30 s: the answer stands, no new token (bounded
            # renewal, per identity and API).
            api.remaining[0] = 5
            self.assertEqual(send(client, api.url), 401)
            self.assertEqual(len(api.seen), 3)
            self.assertEqual(sandbox.stats()["token_requests"], 2)
            client.close()
        finally:
            api.close()
            sandbox.stop()

    def test_requests_auth(self):
        import requests

        def send(client, url):
            with requests.Session() as session:
                return session.get(url, auth=lwolf_auth.RequestsAuth(client), timeout=10).status_code

        self.check(send)

    def test_httpx_auth(self):
        import httpx

        def send(client, url):
            with httpx.Client(auth=lwolf_auth.HttpxAuth(client), timeout=10) as http:
                return http.get(url).status_code

        self.check(send)

    def test_httpx_async_auth(self):
        import asyncio

        import httpx

        def send(client, url):
            async def main():
                async with httpx.AsyncClient(auth=lwolf_auth.HttpxAuth(client), timeout=10) as http:
                    return (await http.get(url)).status_code

            return asyncio.run(main())

        # The sync flow's rules: the token on the client's own API, renewed once on a 401.
        self.check(send)

    def test_httpx_async_client_against_the_sandbox(self):
        import asyncio

        import httpx

        async def main():
            with lwolf_auth.Client(**SANDBOX.settings()) as client:
                async with httpx.AsyncClient(auth=lwolf_auth.HttpxAuth(client), timeout=10) as http:
                    offices, created = await asyncio.gather(
                        http.get(SANDBOX.api_base_url + "/v1/offices"),
                        http.post(SANDBOX.api_base_url + "/v1/transactions", json={"address": "2 Elm St"}))
                return offices, created, client.token()

        offices, created, token = asyncio.run(main())
        self.assertEqual(offices.status_code, 200, offices.text)
        self.assertEqual(created.status_code, 201, created.text)
        self.assertEqual(created.json()["address"], "2 Elm St")
        self.assertEqual(offices.request.headers["Authorization"], "Bearer " + token)

    def test_the_event_loop_turns_during_a_token_fetch(self):
        import asyncio

        import httpx

        sandbox = Sandbox("--token-latency-ms", "500")
        try:
            async def main(client):
                ticks = 0
                fetching = True

                async def ticker():
                    nonlocal ticks
                    while fetching:
                        await asyncio.sleep(0.01)
                        ticks += 1

                task = asyncio.create_task(ticker())
                await asyncio.sleep(0)  # let it start
                started = time.monotonic()
                async with httpx.AsyncClient(auth=lwolf_auth.HttpxAuth(client), timeout=10) as http:
                    response = await http.get(sandbox.api_base_url + "/v1/offices")
                elapsed = time.monotonic() - started
                fetching = False
                await task
                return response, ticks, elapsed

            with lwolf_auth.Client(**sandbox.settings()) as client:
                response, ticks, elapsed = asyncio.run(main(client))
                self.assertEqual(response.status_code, 200)
                self.assertGreaterEqual(elapsed, 0.45, "was the token endpoint slow?")
                # A 10 ms sleep over about 500 ms: some 50 ticks; a blocked loop gets none.
                self.assertGreaterEqual(ticks, 20, "%d ticks in %.3f s" % (ticks, elapsed))
                self.assertEqual(response.request.headers["Authorization"], "Bearer " + client.token())
            self.assertEqual(sandbox.stats()["token_requests"], 1)
        finally:
            sandbox.stop()

    def test_dpop_through_the_adapters(self):
        import httpx
        import requests

        sandbox = Sandbox("--dpop-nonce")
        try:
            client = lwolf_auth.Client(**sandbox.settings(dpop=True))
            url = sandbox.api_base_url + "/v1/offices"
            self.assertEqual(requests.get(url, auth=lwolf_auth.RequestsAuth(client), timeout=10).status_code, 200)
            self.assertEqual(httpx.get(url, auth=lwolf_auth.HttpxAuth(client), timeout=10).status_code, 200)
            client.close()
        finally:
            sandbox.stop()


class _Recorder:
    """A local HTTP server that records the Authorization header of each request and
    answers with ``answer(path)``: (status, headers)."""

    def __init__(self, answer):
        import http.server

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                status, headers = answer(self.path)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RedTeamTest(unittest.TestCase):
    """The red team's findings in the Python binding: where the adapters send the token,
    and a forked child that exits."""

    def setUp(self):
        self.foreign = _Recorder(lambda path: (401, []))
        self.addCleanup(self.foreign.close)
        target = self.foreign.base + "/storage/doc.pdf"
        self.api = _Recorder(lambda path: (302, [("Location", target)]) if path.startswith("/doc")
                             else (403, []) if path.startswith("/forbidden") else (200, []))
        self.addCleanup(self.api.close)
        self.client = lwolf_auth.Client(**SANDBOX.settings(api_base_url=self.api.base))
        self.addCleanup(self.client.close)

    def test_a_redirect_to_another_host_never_carries_the_token(self):
        import httpx
        import requests

        before = SANDBOX.stats()["token_requests"]
        response = requests.get(self.api.base + "/doc", auth=lwolf_auth.RequestsAuth(self.client), timeout=10)
        self.assertEqual(response.status_code, 401)
        with httpx.Client(auth=lwolf_auth.HttpxAuth(self.client), follow_redirects=True, timeout=10) as http:
            self.assertEqual(http.get(self.api.base + "/doc").status_code, 401)
        self.assertEqual(self.foreign.seen, [None, None], "the foreign host got a token")
        self.assertTrue(all(a and a.startswith("Bearer ") for a in self.api.seen), self.api.seen)
        # The foreign 401 renewed nothing: one token for both.
        self.assertEqual(SANDBOX.stats()["token_requests"], before + 1)

    def test_async_httpx_keeps_the_token_at_home(self):
        import asyncio

        import httpx

        before = SANDBOX.stats()["token_requests"]

        async def main():
            auth = lwolf_auth.HttpxAuth(self.client)
            async with httpx.AsyncClient(auth=auth, follow_redirects=True, timeout=10) as http:
                redirected = await http.get(self.api.base + "/doc")
                elsewhere = await http.get(self.foreign.base + "/x")
            return redirected.status_code, elsewhere.status_code

        self.assertEqual(asyncio.run(main()), (401, 401))
        self.assertEqual(self.foreign.seen, [None, None], "the foreign host got a token")
        self.assertTrue(self.api.seen and all(a.startswith("Bearer ") for a in self.api.seen), self.api.seen)
        # The foreign 401s renewed nothing.
        self.assertEqual(SANDBOX.stats()["token_requests"], before + 1)

    def test_a_request_to_another_origin_is_left_alone(self):
        import requests

        response = requests.get(self.foreign.base + "/x", auth=lwolf_auth.RequestsAuth(self.client), timeout=10)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(self.foreign.seen, [None])

    def test_auth_headers_refuse_a_url_the_token_must_not_go_to(self):
        for url in ("http://api.example.com/v1/x", "https://evil.example.com/v1/x", self.foreign.base + "/x"):
            with self.assertRaises(lwolf_auth.InvalidArgument, msg=url):
                self.client.auth_headers("GET", url)
        self.assertIn("Authorization", self.client.auth_headers("GET", self.api.base + "/v1/x"))

    def test_reject_token_refuses_empty_and_foreign_tokens(self):
        token = self.client.token()
        before = SANDBOX.stats()["token_requests"]
        self.assertFalse(self.client.reject_token(""))
        self.assertFalse(self.client.reject_token("Bearer not-ours"))
        self.assertEqual(self.client.token(), token)
        self.assertEqual(SANDBOX.stats()["token_requests"], before)

    def test_a_back_office_403_renews_through_the_adapters(self):
        import requests

        token = self.client.token()
        before = SANDBOX.stats()["token_requests"]
        auth = lwolf_auth.RequestsAuth(self.client)
        response = requests.get(self.api.base + "/forbidden", auth=auth, timeout=10)
        self.assertEqual(response.status_code, 403)
        # One renewal (the Back Office API's 403 means an expired or invalid token), bounded.
        self.assertEqual(SANDBOX.stats()["token_requests"], before + 1)
        self.assertNotEqual(self.client.token(), token)
        self.assertEqual(self.api.seen[-2:], ["Bearer " + token, "Bearer " + self.client.token()])

    def test_a_forked_child_exits_while_a_parent_thread_logs(self):
        # A child of os.fork() that exits normally runs the module's atexit hook, which
        # replaces the log callback: it must not wait on the parent's thread in the callback.
        script = """
import logging, os, sys, threading, time
import lwolf_auth
entered = threading.Event()
class Slow(logging.Handler):
    def emit(self, record):
        if threading.current_thread() is not threading.main_thread() and not entered.is_set():
            entered.set()
            time.sleep(3)
logger = logging.getLogger("lwolf_auth")
logger.addHandler(Slow())
logger.setLevel(lwolf_auth.TRACE)
client = lwolf_auth.Client.from_env()
threading.Thread(target=client.token, daemon=True).start()
if not entered.wait(20):
    sys.exit("no record reached the handler")
pid = os.fork()
if pid == 0:
    sys.exit(0)
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == pid:
        print("child exited", os.WEXITSTATUS(status))
        break
    time.sleep(0.01)
else:
    os.kill(pid, 9)
    print("child hung")
"""
        env = dict(os.environ)
        env.update(SANDBOX.env)
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=str(HERE),
                             capture_output=True, text=True, timeout=120)
        self.assertIn("child exited 0", out.stdout, out.stdout + out.stderr)


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1 (a free port, nothing saved)."""

    def __init__(self):
        import shutil
        import socket

        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.command("PING") != b"+PONG\r\n":
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("redis-server did not start")
            time.sleep(0.02)
        self.url = "redis://127.0.0.1:%d" % self.port

    def command(self, *words):
        """One command over a bare socket; the raw reply (b"" when there is none)."""
        import socket

        req = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(req)
                time.sleep(0.01)
                return s.recv(1 << 16)
        except OSError:
            return b""

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class FleetCacheTest(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)

    def test_clients_share_one_token_through_cache_url(self):
        before = SANDBOX.stats()["token_requests"]
        tokens = []
        for _ in range(3):
            with lwolf_auth.Client(**SANDBOX.settings(cache_url=self.redis.url)) as client:
                tokens.append(client.token())
        self.assertEqual(len(set(tokens)), 1)
        self.assertEqual(SANDBOX.stats()["token_requests"], before + 1)
        # What Redis holds shows neither the token nor the secret nor the client id.
        keys = self.redis.command("KEYS", "*")
        self.assertIn(b"lwolf-auth:", keys)
        name = re.search(rb"lwolf-auth:[0-9a-f]{64}", keys).group(0).decode()
        value = self.redis.command("GET", name)
        for needle in (tokens[0], SANDBOX.env["LWOLF_CLIENT_SECRET"], SANDBOX.env["LWOLF_CLIENT_ID"]):
            self.assertNotIn(needle.encode(), keys + value)

    def test_an_unreachable_redis_is_logged_and_not_an_outage(self):
        self.redis.stop()
        with self.assertLogs("lwolf_auth", level="WARNING") as logs:
            with lwolf_auth.Client(**SANDBOX.settings(cache_url=self.redis.url)) as client:
                self.assertTrue(client.token())
        self.assertTrue(any("going on without it" in line for line in logs.output), logs.output)

    def test_a_bad_cache_url_is_a_config_error(self):
        with self.assertRaises(lwolf_auth.ConfigError) as cm:
            lwolf_auth.Client(**SANDBOX.settings(cache_url="memcached://127.0.0.1:1"))
        self.assertIn("cache_url", str(cm.exception))


class ForkTest(unittest.TestCase):
    def test_os_fork_parent_and_child_get_their_own_answers(self):
        sandbox = Sandbox()
        try:
            client = lwolf_auth.Client(**sandbox.settings())
            token = client.token()
            echo = sandbox.origin + "/_sandbox/echo"
            # A pooled keep-alive connection when we fork.
            self.assertEqual(client.get(echo).status_code, 200)

            def own_answers(who):
                ok = 0
                for i in range(20):
                    r = client.get(echo, params=[("who", who), ("i", str(i))])
                    ok += r.status_code == 200 and [tuple(p) for p in r.json()["query"]] == [
                        ("who", who), ("i", str(i))]
                return ok

            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report through the exit status, never raise
                code = 1
                try:
                    signal_alarm = __import__("signal").alarm
                    signal_alarm(20)
                    os.close(write_end)
                    os.read(read_end, 1)
                    same_token = client.token() == token
                    code = 0 if same_token and own_answers("child") == 20 else 1
                finally:
                    os._exit(code)
            os.close(read_end)
            os.write(write_end, b"x")  # both go at once
            os.close(write_end)
            parent_ok = own_answers("parent")
            _, status = os.waitpid(pid, 0)
            self.assertEqual(parent_ok, 20)
            self.assertTrue(os.WIFEXITED(status), f"the child did not exit: {status}")
            self.assertEqual(os.WEXITSTATUS(status), 0, "the child got a wrong answer or token")
            # The child served the token cached before the fork.
            self.assertEqual(sandbox.stats()["token_requests"], 1)
            client.close()
        finally:
            sandbox.stop()


class ErrorTest(unittest.TestCase):
    def test_wrong_secret_is_invalid_credentials(self):
        secret = "wrong-secret-3d8e"
        with lwolf_auth.Client(**SANDBOX.settings(client_secret=secret)) as c:
            with self.assertRaises(lwolf_auth.InvalidCredentials) as cm:
                c.token()
        e = cm.exception
        self.assertIsInstance(e, lwolf_auth.LwolfError)
        self.assertEqual(e.status, 3)
        self.assertEqual(e.http_status, 401)
        self.assertEqual(e.error, "access_denied")
        self.assertIn("401", e.message)
        self.assertNotIn(secret, e.message)
        self.assertNotIn(SANDBOX.env["LWOLF_CLIENT_SECRET"], e.message)

    def test_config_errors(self):
        with self.assertRaises(lwolf_auth.InvalidArgument) as cm:
            lwolf_auth.Config(client_secert="x")
        # A near miss is named, with the key it was meant to be; anything else is not shown
        # (it may be a secret pasted where a key belongs).
        self.assertIn("client_secert", cm.exception.message)
        self.assertIn("client_secret", cm.exception.message)
        with self.assertRaises(lwolf_auth.InvalidArgument) as cm:
            lwolf_auth.Config(**{"Xq7-pasted-secret-value": "x"})
        self.assertNotIn("Xq7-pasted-secret-value", cm.exception.message)
        with self.assertRaises(lwolf_auth.InvalidArgument):
            lwolf_auth.Config(timeout_ms="soon")
        with self.assertRaises(lwolf_auth.InvalidArgument):
            lwolf_auth.Config(client_id="a\0b")
        with self.assertRaises(lwolf_auth.ConfigError):
            lwolf_auth.Client(client_secret="s")  # no client_id
        with self.assertRaises(lwolf_auth.ConfigError):
            lwolf_auth.Client(client_id="i", client_secret="s",
                              token_url="http://example.com/oauth/token")
        # Numbers are accepted as numbers.
        lwolf_auth.Config(timeout_ms=2500, refresh_ratio=0.5, max_retries=0).close()

    def test_transport_error(self):
        # A port nobody listens on: connection refused, no retries.
        settings = SANDBOX.settings(token_url="http://127.0.0.1:9/oauth/token", max_retries=0)
        with lwolf_auth.Client(**settings) as c:
            with self.assertRaises(lwolf_auth.TransportError) as caught:
                c.token()
            self.assertIsInstance(caught.exception, ConnectionError)
            self.assertIsNone(caught.exception.http_status)

    def test_timeout_is_a_timeout_error(self):
        import socket

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts, never answers
        try:
            url = "http://127.0.0.1:%d/oauth/token" % silent.getsockname()[1]
            with lwolf_auth.Client(**SANDBOX.settings(token_url=url, max_retries=0, timeout_ms=200)) as c:
                with self.assertRaises(TimeoutError) as caught:
                    c.token()
            self.assertIsInstance(caught.exception, lwolf_auth.Timeout)
            self.assertIsInstance(caught.exception, lwolf_auth.TransportError)
        finally:
            silent.close()

    def test_panic_becomes_internal_error(self):
        if os.environ.get("LWOLF_EXPECT_TEST_PANIC") != "1":
            self.skipTest("needs a library built with the ffi-test-panic feature")
        with lwolf_auth.Config() as cfg:
            with self.assertRaises(lwolf_auth.InternalError) as cm:
                cfg.set("__lwolf_test_panic", "1")
            self.assertIn("panic", cm.exception.message)
            cfg.set("client_id", "still-works")


class RawMisuseTest(unittest.TestCase):
    """The C functions themselves, called the wrong way from Python."""

    def test_null_handles(self):
        self.assertEqual(_lib.lwolf_config_new(None), 1)
        self.assertEqual(_lib.lwolf_config_set(None, b"client_id", b"x"), 1)
        self.assertEqual(_lib.lwolf_client_new(None, None), 1)
        self.assertEqual(_lib.lwolf_client_invalidate(None), 1)
        self.assertEqual(_lib.lwolf_response_status(None), 0)
        self.assertIsNone(_lib.lwolf_response_header(None, b"x"))
        self.assertNotEqual(lwolf_auth.last_error_message(), "")
        _lib.lwolf_config_free(None)
        _lib.lwolf_client_free(None)
        _lib.lwolf_response_free(None)

    def test_invalid_utf8_and_last_error(self):
        cfg = lwolf_auth.native._ConfigP()
        self.assertEqual(_lib.lwolf_config_new(ctypes.byref(cfg)), 0)
        self.assertEqual(lwolf_auth.last_error_message(), "")
        self.assertEqual(_lib.lwolf_config_set(cfg, b"client_id", b"\xff\xfe"), 1)
        self.assertIn("UTF-8", lwolf_auth.last_error_message())
        self.assertEqual(_lib.lwolf_config_set(cfg, b"\xff", b"x"), 1)
        self.assertEqual(_lib.lwolf_config_set(cfg, b"client_id", None), 1)
        self.assertEqual(_lib.lwolf_config_set(cfg, b"client_id", b"ok"), 0)
        self.assertEqual(lwolf_auth.last_error_message(), "")
        _lib.lwolf_config_free(cfg)

    def test_length_query_and_short_buffer(self):
        with lwolf_auth.Client(**SANDBOX.settings()) as c:
            token = c.token()
            length = ctypes.c_size_t(0)
            self.assertEqual(_lib.lwolf_client_token(c._handle, None, 0, ctypes.byref(length)), 10)
            self.assertEqual(length.value, len(token))
            buf = ctypes.create_string_buffer(b"x" * len(token), len(token))
            self.assertEqual(
                _lib.lwolf_client_token(c._handle, buf, len(token), ctypes.byref(length)), 10
            )
            self.assertEqual(buf.raw, b"x" * len(token))  # untouched
            self.assertEqual(_lib.lwolf_client_token(c._handle, None, 5, ctypes.byref(length)), 1)
            self.assertEqual(_lib.lwolf_client_token(c._handle, buf, len(token), None), 1)
            self.assertEqual(c.token(), token)  # the cache is untouched

    def test_last_error_is_per_thread(self):
        self.assertEqual(_lib.lwolf_config_new(None), 1)
        seen = []
        t = threading.Thread(target=lambda: seen.append(lwolf_auth.last_error_message()))
        t.start()
        t.join()
        self.assertEqual(seen, [""])
        self.assertNotEqual(lwolf_auth.last_error_message(), "")


if __name__ == "__main__":
    unittest.main()
