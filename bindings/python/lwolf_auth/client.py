"""The client: tokens on demand, and authenticated API requests."""

import ctypes
import json as _json
import logging
import threading

from .config import Config
from .errors import ERR_BUFFER_TOO_SMALL
from .native import (
    _check,
    _ClientP,
    _SignFn,
    _Stats,
    _encode,
    _lib,
    _RequestP,
    _ResponseP,
    _TokenInfo,
    _u8_p,
    _WriteFn,
)
from .response import TokenInfo, _pairs, _take_response

_buffers = threading.local()


def _auth_buffers(size=2048):
    """This thread's buffers for ``auth_headers`` (reused: a call allocates only its result)."""
    held = getattr(_buffers, "auth", None)
    if held is None or len(held[0]) < size:
        held = (ctypes.create_string_buffer(size), ctypes.create_string_buffer(size),
                ctypes.c_size_t(), ctypes.c_size_t())
        _buffers.auth = held
    return held


class Client:
    """A token client: fetches, caches and refreshes the token, and sends API requests.

    ``Client(client_id=..., client_secret=..., ...)`` with the keys of ``Config``, or
    ``Client(config)``, or ``Client.from_env(**overrides)``. No network I/O happens until the
    first ``token()`` or ``request()``. Thread-safe: share one client. ``close()`` it (or use
    it as a context manager) when no thread needs it any more; after that every call raises
    ``InvalidArgument``.
    """

    def __init__(self, config=None, signer=None, **settings):
        if config is not None and settings:
            raise TypeError("give either a Config or settings, not both")
        owned = config is None
        if owned:
            config = Config(**settings)
        # What every handle made from this client keeps alive: the signer's callback.
        self._keep = []
        try:
            if signer is not None:
                callback = _signer_callback(signer)
                self._keep.append(callback)
                _check(_lib.lwolf_config_set_signer(config._handle, callback, None))
            handle = _ClientP()
            _check(_lib.lwolf_client_new(config._handle, ctypes.byref(handle)))
        finally:
            if signer is not None and not owned:
                # The caller's Config must not keep a callback this client owns.
                _lib.lwolf_config_set_signer(config._handle, _SignFn(), None)
            if owned:
                config.close()
        self._handle = handle

    @classmethod
    def from_env(cls, signer=None, **overrides):
        """A client configured from the ``LWOLF_*`` environment variables, then ``overrides``
        (and ``signer``, as for ``Client``)."""
        with Config.from_env(**overrides) as config:
            return cls(config, signer=signer)

    def _derived(self, handle):
        """A handle made from this one: it keeps what this one keeps alive."""
        other = Client.__new__(Client)
        other._handle = handle
        other._keep = self._keep
        return other

    def for_tenant(self, lwt_client_id):
        """A client for another customer instance: the same settings and connection pool, its
        own token. Each client is closed on its own; either may outlive the other."""
        handle = _ClientP()
        _check(
            _lib.lwolf_client_for_tenant(
                self._handle, _encode(lwt_client_id, "lwt_client_id"), ctypes.byref(handle)
            )
        )
        return self._derived(handle)

    def token(self):
        """A usable bearer token (str): the cached one, or a newly fetched one. A secret:
        log ``token_info().fingerprint`` instead."""
        size = 2048
        while True:
            buf = ctypes.create_string_buffer(size)
            length = ctypes.c_size_t()
            status = _lib.lwolf_client_token(self._handle, buf, size, ctypes.byref(length))
            if status == ERR_BUFFER_TOO_SMALL:
                size = length.value + 1
                continue
            _check(status)
            return buf.raw[: length.value].decode("ascii")

    def token_info(self):
        """The current token's ``TokenInfo`` (fetching a token if none is cached)."""
        raw = _TokenInfo()
        _check(_lib.lwolf_client_token_info(self._handle, ctypes.byref(raw)))
        return TokenInfo(raw)

    def auth_headers(self, method, url):
        """The headers a request of ``method`` to ``url`` sent by other means must carry:
        ``{"Authorization": "Bearer ..."}``, or for a DPoP-bound token ``{"Authorization":
        "DPoP ...", "DPoP": <a new proof>}``. Secrets: send them, never log them."""
        buffers = _auth_buffers()
        while True:
            auth, proof, auth_len, proof_len = buffers
            status = _lib.lwolf_client_auth_headers(
                self._handle, _encode(method, "method"), _encode(url, "url"),
                auth, len(auth), ctypes.byref(auth_len), proof, len(proof), ctypes.byref(proof_len))
            if status == ERR_BUFFER_TOO_SMALL:
                buffers = _auth_buffers(max(auth_len.value, proof_len.value) + 1)
                continue
            _check(status)
            headers = {"Authorization": auth.raw[:auth_len.value].decode()}
            if proof_len.value:
                headers["DPoP"] = proof.raw[:proof_len.value].decode()
            ctypes.memset(auth, 0, auth_len.value)  # no copy of the secret left behind
            return headers

    def reject_token(self, authorization):
        """This client's API answered 401 to a request sent by other means with
        ``authorization`` (the value ``auth_headers`` gave): as ``reject_token_at`` with the
        client's API and 401."""
        again = ctypes.c_int32()
        _check(_lib.lwolf_client_reject_token(
            self._handle, _encode(authorization, "authorization"), ctypes.byref(again)))
        return bool(again.value)

    def reject_token_at(self, url, status, authorization):
        """The server at ``url`` answered ``status`` to a request sent by other means with
        ``authorization`` (the value ``auth_headers`` gave). True when the request should be
        sent once more with ``auth_headers`` again: the token was renewed by the API's rules
        (a 401; a 403 of an API other than the Transact API; at most once per 30 s for the
        identity and API), or a newer one is in service. False when the answer stands, and
        always for an empty token or one that was never this client's. A ``url`` the token
        must not go to raises ``InvalidArgument``."""
        again = ctypes.c_int32()
        _check(_lib.lwolf_client_reject_token_at(
            self._handle, _encode(url, "url"), int(status), _encode(authorization, "authorization"),
            ctypes.byref(again)))
        return bool(again.value)

    def dpop_nonce(self, url, nonce):
        """Keeps the ``DPoP-Nonce`` a server at ``url`` answered with, for the next proof."""
        _check(_lib.lwolf_client_dpop_nonce(self._handle, _encode(url, "url"), _encode(nonce, "nonce")))

    def invalidate(self):
        """Drops the cached token; the next call fetches a new one."""
        _check(_lib.lwolf_client_invalidate(self._handle))

    def for_api(self, api_base_url):
        """A client for another API that takes the same tokens (the Transact API beside the
        Back Office API): the same identity, token cache and settings, ``api_base_url`` as
        the base of its requests. Each client is closed on its own."""
        handle = _ClientP()
        _check(
            _lib.lwolf_client_for_api(
                self._handle, _encode(api_base_url, "api_base_url"), ctypes.byref(handle)
            )
        )
        return self._derived(handle)

    def transact(self):
        """A client for the Transact API (``transact_base_url``): the same token, pool and
        caches, ``lw-subscription-key`` on every call; a 401 renews the token (bounded), a
        403 never does (it is about the subscription key). Without a ``subscription_key``
        its calls raise ``ConfigError`` before anything is sent."""
        handle = _ClientP()
        _check(_lib.lwolf_client_transact(self._handle, ctypes.byref(handle)))
        return self._derived(handle)

    def stats(self):
        """What this client and every handle made from it have done, as a dict:
        ``token_requests``, ``token_failures``, ``tokens_shared``, ``forced_renewals``,
        ``renewals_declined``, ``retries``, ``api_requests``, ``throttled``, and
        ``token_expires_at_ms`` (this handle's token, Unix ms; 0 when none)."""
        raw = _Stats()
        raw.size = ctypes.sizeof(_Stats)
        _check(_lib.lwolf_client_stats(self._handle, ctypes.byref(raw)))
        return {name: getattr(raw, name) for name, _ in _Stats._fields_ if name != "size"}

    def request(
        self,
        method,
        path,
        *,
        json=None,
        data=None,
        content_type=None,
        headers=None,
        params=None,
        timeout=None,
        stream_to=None,
    ):
        """Sends ``method`` to ``api_base_url + path`` (or an absolute URL on its origin)
        with the bearer token, and returns a ``Response`` for any HTTP status; exceptions
        mean no response could be had.

        ``json``: a value sent as JSON. ``data``: bytes or str sent as they are, with
        ``content_type`` (default ``application/json``). ``headers``: a mapping (or pairs)
        of headers to add; ``Authorization`` is the library's. ``params``: a mapping or pairs
        for the query, percent-encoded so the server decodes exactly these strings (OData's
        ``$filter`` welcome). ``timeout``: seconds for each attempt. ``stream_to``: a file
        object (anything with ``write``) that gets the body as it arrives, never held whole;
        the response's ``content`` is then empty."""
        if json is not None and data is not None:
            raise TypeError("give json or data, not both")
        req = _RequestP()
        _check(_lib.lwolf_request_new(_encode(method, "method"), _encode(path, "path"), ctypes.byref(req)))
        try:
            for name, value in _pairs(headers):
                _check(_lib.lwolf_request_header(req, _encode(name, "header name"), _encode(value, "header value")))
            for name, value in _pairs(params):
                _check(_lib.lwolf_request_query(req, _encode(name, "query name"), _encode(value, "query value")))
            if json is not None:
                data = _json.dumps(json).encode("utf-8")
                content_type = content_type or "application/json"
            if data is not None:
                raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                buf = (ctypes.c_uint8 * max(1, len(raw))).from_buffer_copy(raw.ljust(1, b"\0"))
                ct = None if content_type is None else _encode(content_type, "content_type")
                _check(_lib.lwolf_request_body(req, ctypes.cast(buf, _u8_p), len(raw), ct))
            if timeout is not None:
                ms = max(1, int(round(float(timeout) * 1000)))
                _check(_lib.lwolf_request_timeout_ms(req, ms))
            handle = _ResponseP()
            if stream_to is None:
                _check(_lib.lwolf_client_send(self._handle, req, ctypes.byref(handle)))
            else:
                self._send_to(req, stream_to, handle)
        finally:
            _lib.lwolf_request_free(req)
        return _take_response(handle, path)

    def _send_to(self, req, out, handle):
        failure = []

        def write(_userdata, data, length):
            try:
                out.write(ctypes.string_at(data, length))
                return 0
            except BaseException as e:  # noqa: BLE001 -- raised again below, on this thread
                failure.append(e)
                return 1

        callback = _WriteFn(write)  # kept alive for the whole call
        status = _lib.lwolf_client_send_to(self._handle, req, callback, None, ctypes.byref(handle))
        if failure:
            raise failure[0]
        _check(status)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def head(self, path, **kwargs):
        return self.request("HEAD", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def options(self, path, **kwargs):
        return self.request("OPTIONS", path, **kwargs)

    def close(self):
        """Frees the client. Idempotent; later calls raise ``InvalidArgument`` (the library
        is handed NULL and says so)."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.lwolf_client_free(handle)

    @property
    def closed(self):
        return not self._handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- at interpreter exit the library may be gone
            pass


def _signer_callback(signer):
    """The C callback for ``signer``, a callable that takes the signing input (bytes) and
    returns the signature (bytes). An exception, or something that is not bytes of a
    fitting length, fails that token request (the library reports the code it got); it is
    logged here with its type, never its arguments."""

    def sign(_userdata, data, length, sig, cap, sig_len):
        try:
            signature = bytes(signer(ctypes.string_at(data, length)))
        except BaseException as e:  # noqa: BLE001 -- never raise into C
            logging.getLogger("lwolf_auth").warning("the signer raised %s", type(e).__name__)
            return 1
        if not signature or len(signature) > cap:
            return 2
        ctypes.memmove(sig, signature, len(signature))
        sig_len[0] = len(signature)
        return 0

    return _SignFn(sign)
