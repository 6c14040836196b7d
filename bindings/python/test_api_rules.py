"""The Transact handle's rules, the pace of API calls, request ids, stats and signers through
the Python surface, against the sandbox process and local scripted servers.

    cd bindings/python && python3 -m unittest -v test_api_rules

Run with test_lwolf_auth by tests/python.rs (the same sandbox and library).
"""

import logging
import threading
import time
import unittest
import uuid

import lwolf_auth
from test_lwolf_auth import ROOT, Sandbox, _Api401

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KEYS = ROOT / "test-support" / "keys"


class TransactTest(unittest.TestCase):
    def setUp(self):
        self.sandbox = Sandbox()
        self.settings = self.sandbox.settings(
            subscription_key=self.sandbox.env["LWOLF_SUBSCRIPTION_KEY"],
            transact_base_url=self.sandbox.env["LWOLF_TRANSACT_BASE_URL"],
        )

    def tearDown(self):
        self.sandbox.stop()

    def test_the_transact_handle_sends_the_key_and_carries_request_ids(self):
        with lwolf_auth.Client(**self.settings) as client:
            transact = client.transact()
            first = transact.get("/v1/transactions")
            second = transact.get("/v1/transactions")
            self.assertEqual(first.status_code, 200, first.text)
            self.assertEqual(uuid.UUID(first.request_id).version, 4)
            self.assertNotEqual(first.request_id, second.request_id)
            mine = transact.get("/v1/transactions", headers={"X-Request-ID": "mine-7"})
            self.assertEqual(mine.request_id, "mine-7")
            stats = client.stats()
            self.assertEqual(stats["api_requests"], 3)
            self.assertEqual(stats["token_requests"], 1)
            self.assertGreater(stats["token_expires_at_ms"], time.time() * 1000)
            transact.close()

    def test_a_transact_403_never_renews(self):
        settings = dict(self.settings, subscription_key="not-the-sandbox-key")
        with lwolf_auth.Client(**settings) as client, self.assertLogs("lwolf_auth",
                                                                      "WARNING") as logs:
            transact = client.transact()
            for _ in range(200):
                self.assertEqual(transact.get("/v1/transactions").status_code, 403)
            stats = client.stats()
            transact.close()
        self.assertEqual(self.sandbox.stats()["token_requests"], 1)
        self.assertEqual(stats["renewals_declined"], 200)
        self.assertEqual(stats["forced_renewals"], 0)
        warnings = [r for r in logs.records if "lw-subscription-key" in r.getMessage()]
        self.assertEqual(len(warnings), 1, logs.output)
        self.assertNotIn("not-the-sandbox-key", "\n".join(logs.output))

    def test_a_transact_401_renews_at_most_once(self):
        api = _Api401(fail=10**9)  # 401 to everything
        try:
            settings = dict(self.settings, transact_base_url=api.base + "/transact-workflow")
            with lwolf_auth.Client(**settings) as client:
                transact = client.transact()
                for _ in range(200):
                    self.assertEqual(transact.get("/v1/transactions").status_code, 401)
                self.assertEqual(client.stats()["forced_renewals"], 1)
                transact.close()
            self.assertLessEqual(self.sandbox.stats()["token_requests"], 2)
            ids = set(api.ids)
            self.assertEqual(len(ids), 200, "each call has its own id")
        finally:
            api.close()

    def test_without_a_subscription_key_nothing_is_sent(self):
        settings = dict(self.settings)
        del settings["subscription_key"]
        with lwolf_auth.Client(**settings) as client:
            with self.assertRaises(lwolf_auth.ConfigError) as caught:
                client.transact().get("/v1/transactions")
        self.assertIn("subscription_key", str(caught.exception))
        self.assertEqual(self.sandbox.stats()["api_requests"], 0)


class PaceTest(unittest.TestCase):
    def test_max_in_flight_holds_under_64_threads(self):
        sandbox = Sandbox("--api-latency-ms", "100")
        try:
            with lwolf_auth.Client(**sandbox.settings(max_in_flight=4, deadline_ms=120000)) as client:
                client.token()
                start = threading.Barrier(64)
                statuses = []

                def call():
                    start.wait()
                    statuses.append(client.get("/v1/offices").status_code)

                threads = [threading.Thread(target=call) for _ in range(64)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                self.assertEqual(statuses, [200] * 64)
                self.assertGreater(client.stats()["throttled"], 0)
            counters = sandbox.stats()
            self.assertLessEqual(counters["api_in_flight_peak"], 4, counters)
            self.assertEqual(counters["api_requests"], 64)
        finally:
            sandbox.stop()

    def test_a_caller_past_its_deadline_in_line_gets_deadline_error(self):
        sandbox = Sandbox()
        try:
            settings = sandbox.settings(max_requests_per_second=1, deadline_ms=500)
            with lwolf_auth.Client(**settings) as client:
                self.assertEqual(client.get("/v1/offices").status_code, 200)
                # The next start is a second away: past this call's deadline.
                with self.assertRaises(lwolf_auth.Deadline) as caught:
                    client.get("/v1/offices")
                self.assertEqual(lwolf_auth.status_name(caught.exception.status), "LWOLF_ERR_DEADLINE")
                self.assertEqual(client.stats()["api_requests"], 1)
            self.assertEqual(sandbox.stats()["api_requests"], 1)
        finally:
            sandbox.stop()


def _private_key(name):
    return serialization.load_pem_private_key((KEYS / name).read_bytes(), password=None)


class SignerTest(unittest.TestCase):
    """A signer whose key stays with `cryptography`: the library never reads it."""

    def setUp(self):
        self.sandbox = Sandbox("--client-key", str(KEYS / "rsa-public.pem"))
        self.settings = self.sandbox.settings(private_key_id="vault-key-1")
        del self.settings["client_secret"]

    def tearDown(self):
        self.sandbox.stop()

    def test_rs256_and_ps256_signers_get_tokens(self):
        key = _private_key("rsa-pkcs8.pem")
        inputs = []

        def rs256(data):
            inputs.append(data)
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        def ps256(data):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(data, pss, hashes.SHA256())

        with lwolf_auth.Client(signer=rs256, **self.settings) as client:
            self.assertEqual(client.get("/v1/offices").status_code, 200)
        # What was signed is the assertion's header.claims, with the kid given.
        header = inputs[-1].split(b".")[0]
        self.assertIn(b"vault-key-1", _b64(header))
        with lwolf_auth.Client(signer=ps256, assertion_alg="PS256", **self.settings) as client:
            self.assertEqual(client.token_info().token_type, "Bearer")
        self.assertEqual(self.sandbox.stats()["tokens_issued"], 2)

    def test_a_failing_signer_fails_that_request_and_sends_nothing(self):
        def refuses(_data):
            raise RuntimeError("the HSM is locked")

        with lwolf_auth.Client(signer=refuses, **self.settings) as client:
            with self.assertLogs("lwolf_auth", "WARNING") as logs:
                with self.assertRaises(lwolf_auth.ConfigError) as caught:
                    client.token()
        self.assertIn("signer", str(caught.exception))
        self.assertIn("RuntimeError", "\n".join(logs.output))
        self.assertNotIn("HSM is locked", "\n".join(logs.output))
        self.assertEqual(self.sandbox.stats()["token_requests"], 0)

    def test_garbage_from_a_signer_is_a_clear_error(self):
        with lwolf_auth.Client(signer=lambda _data: b"\x01" * 10, **self.settings) as client:
            with self.assertRaises(lwolf_auth.ConfigError) as caught:
                client.token()
        self.assertIn("signature", str(caught.exception))
        self.assertEqual(self.sandbox.stats()["token_requests"], 0)

    def test_a_slow_signer_is_bounded_by_the_deadline(self):
        key = _private_key("rsa-pkcs8.pem")

        def slow(data):
            time.sleep(1.0)
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        with lwolf_auth.Client(signer=slow, deadline_ms=300, **self.settings) as client:
            with self.assertRaises(lwolf_auth.Deadline):
                client.token()
        self.assertEqual(self.sandbox.stats()["token_requests"], 0)

    def test_a_signer_may_call_back_into_the_library(self):
        key = _private_key("rsa-pkcs8.pem")
        client_box = []

        def reentrant(data):
            # Stats and another client's token, from inside the signer: no deadlock.
            client_box[0].stats()
            with lwolf_auth.Client(**self.sandbox.settings()) as other:
                other.token()
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        with lwolf_auth.Client(signer=reentrant, **self.settings) as client:
            client_box.append(client)
            self.assertEqual(client.get("/v1/offices").status_code, 200)

    def test_a_signer_needs_private_key_id(self):
        settings = dict(self.settings)
        del settings["private_key_id"]
        with self.assertRaises(lwolf_auth.ConfigError) as caught:
            lwolf_auth.Client(signer=lambda d: d, **settings)
        self.assertIn("private_key_id", str(caught.exception))


def _b64(segment):
    import base64

    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
