"""Python bindings for liblwolf_auth, the Lone Wolf Back Office API token client.

A thin ctypes layer over the C ABI (``include/lwolf_auth.h``): no compiled extension, no
dependency beyond the standard library.

    import lwolf_auth

    with lwolf_auth.Client(client_id="...", client_secret="...") as client:
        response = client.request("GET", "/v1/transactions")
        print(response.status, response.json())

    client = lwolf_auth.Client.from_env()       # LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET, ...

One ``Client`` may be shared by any number of threads: they share its token, and the library
releases the GIL while it waits on the network. Failures raise a subclass of ``LwolfError``
that matches the C status code (``InvalidCredentials`` for LWOLF_ERR_INVALID_CREDENTIALS...),
with the library's message.

The shared library is looked for, in order: the path in ``LWOLF_AUTH_LIB``; next to this
module; ``target/release`` then ``target/debug`` of the source tree this module sits in; the
system's library path.
"""

import atexit
import collections.abc
import ctypes
import ctypes.util
import json as _json
import logging
import os
import sys
import threading
from pathlib import Path

__all__ = [
    "Client",
    "Config",
    "Response",
    "TokenInfo",
    "LwolfError",
    "InvalidArgument",
    "ConfigError",
    "InvalidCredentials",
    "BadRequest",
    "Forbidden",
    "RateLimited",
    "ServerError",
    "TransportError",
    "InvalidResponse",
    "BufferTooSmall",
    "InternalError",
    "Timeout",
    "Aborted",
    "Deadline",
    "HTTPError",
    "RequestsAuth",
    "HttpxAuth",
    "TRACE",
    "library_path",
    "status_name",
    "version",
]

# ----------------------------------------------------------------------------------------------
# Status codes and exceptions

OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_CONFIG = 2
ERR_INVALID_CREDENTIALS = 3
ERR_BAD_REQUEST = 4
ERR_FORBIDDEN = 5
ERR_RATE_LIMITED = 6
ERR_SERVER = 7
ERR_TRANSPORT = 8
ERR_INVALID_RESPONSE = 9
ERR_BUFFER_TOO_SMALL = 10
ERR_INTERNAL = 11
ERR_ABORTED = 12
ERR_DEADLINE = 13


class LwolfError(Exception):
    """A failure reported by the library. ``status`` is the C status code, ``message`` the
    library's description (which never contains the client secret or a token),
    ``http_status`` the status the server answered with (None when none answered) and
    ``error`` the OAuth ``error`` (or the API's ``code``) it gave, if any."""

    status = None

    def __init__(self, message, status=None, http_status=None, error=None):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.error = error
        if status is not None:
            self.status = status

    def __str__(self):
        return self.message


class InvalidArgument(LwolfError):
    """LWOLF_ERR_INVALID_ARGUMENT: NULL, non-UTF-8, unknown key, bad value, foreign origin."""

    status = ERR_INVALID_ARGUMENT


class ConfigError(LwolfError):
    """LWOLF_ERR_CONFIG: an incomplete or forbidden configuration."""

    status = ERR_CONFIG


class InvalidCredentials(LwolfError):
    """LWOLF_ERR_INVALID_CREDENTIALS: the token endpoint answered 401."""

    status = ERR_INVALID_CREDENTIALS


class BadRequest(LwolfError):
    """LWOLF_ERR_BAD_REQUEST: the token endpoint answered 400."""

    status = ERR_BAD_REQUEST


class Forbidden(LwolfError):
    """LWOLF_ERR_FORBIDDEN: the token endpoint answered 403."""

    status = ERR_FORBIDDEN


class RateLimited(LwolfError):
    """LWOLF_ERR_RATE_LIMITED: 429 and the retries ran out."""

    status = ERR_RATE_LIMITED


class ServerError(LwolfError):
    """LWOLF_ERR_SERVER: 5xx after the retries, or another unexpected status."""

    status = ERR_SERVER


class TransportError(LwolfError, ConnectionError):
    """LWOLF_ERR_TRANSPORT: DNS, connect, TLS, I/O or timeout (also a ``ConnectionError``)."""

    status = ERR_TRANSPORT


class Timeout(TransportError, TimeoutError):
    """LWOLF_ERR_TRANSPORT from a timeout (also a ``TimeoutError``)."""


class InvalidResponse(LwolfError):
    """LWOLF_ERR_INVALID_RESPONSE: a malformed, oversized or redirected token response."""

    status = ERR_INVALID_RESPONSE


class BufferTooSmall(LwolfError):
    """LWOLF_ERR_BUFFER_TOO_SMALL (handled inside this module; not normally raised)."""

    status = ERR_BUFFER_TOO_SMALL


class InternalError(LwolfError):
    """LWOLF_ERR_INTERNAL: a bug in the library (for example a caught panic)."""

    status = ERR_INTERNAL


class Aborted(LwolfError):
    """LWOLF_ERR_ABORTED: the writer of a streamed response stopped the transfer."""

    status = ERR_ABORTED


class Deadline(LwolfError, TimeoutError):
    """LWOLF_ERR_DEADLINE: the call's deadline_ms passed while it waited its turn (for a token
    request in flight, or the API's pace); nothing was sent (also a ``TimeoutError``)."""

    status = ERR_DEADLINE


_ERRORS = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        ConfigError,
        InvalidCredentials,
        BadRequest,
        Forbidden,
        RateLimited,
        ServerError,
        TransportError,
        InvalidResponse,
        BufferTooSmall,
        InternalError,
        Aborted,
        Deadline,
    )
}

# ----------------------------------------------------------------------------------------------
# The library and its declarations


class _Config(ctypes.Structure):
    """Opaque ``lwolf_config``."""


class _Client(ctypes.Structure):
    """Opaque ``lwolf_client``."""


class _Response(ctypes.Structure):
    """Opaque ``lwolf_response``."""


class _Request(ctypes.Structure):
    """Opaque ``lwolf_request``."""


class _TokenInfo(ctypes.Structure):
    """``lwolf_token_info``, field for field."""

    _fields_ = [
        ("expires_at_unix", ctypes.c_int64),
        ("refresh_at_unix", ctypes.c_int64),
        ("usable_until_unix", ctypes.c_int64),
        ("lifetime_secs", ctypes.c_uint64),
        ("fingerprint", ctypes.c_char * 16),
        ("token_type", ctypes.c_char * 8),
    ]


_status = ctypes.c_uint32
_ConfigP = ctypes.POINTER(_Config)
_ClientP = ctypes.POINTER(_Client)
_ResponseP = ctypes.POINTER(_Response)
_RequestP = ctypes.POINTER(_Request)
# int (*lwolf_write_fn)(void *userdata, const uint8_t *data, size_t len)
_WriteFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
# void (*lwolf_log_fn)(void *userdata, uint32_t level, const char *message)
_LogFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p)
_size_p = ctypes.POINTER(ctypes.c_size_t)
_u8_p = ctypes.POINTER(ctypes.c_uint8)
_char_p_p = ctypes.POINTER(ctypes.c_char_p)

# Every exported function: (name, restype, argtypes). ctypes' default restype is int, which
# would truncate a returned pointer, so each one is declared, void ones with None.
_SIGNATURES = [
    ("lwolf_config_new", _status, [ctypes.POINTER(_ConfigP)]),
    ("lwolf_config_from_env", _status, [ctypes.POINTER(_ConfigP)]),
    ("lwolf_config_set", _status, [_ConfigP, ctypes.c_char_p, ctypes.c_char_p]),
    ("lwolf_config_free", None, [_ConfigP]),
    ("lwolf_client_new", _status, [_ConfigP, ctypes.POINTER(_ClientP)]),
    ("lwolf_client_for_tenant", _status, [_ClientP, ctypes.c_char_p, ctypes.POINTER(_ClientP)]),
    ("lwolf_client_free", None, [_ClientP]),
    (
        "lwolf_client_token",
        _status,
        [_ClientP, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, _size_p],
    ),
    ("lwolf_client_token_info", _status, [_ClientP, ctypes.POINTER(_TokenInfo)]),
    ("lwolf_client_invalidate", _status, [_ClientP]),
    (
        "lwolf_client_request",
        _status,
        [
            _ClientP,
            ctypes.c_char_p,
            ctypes.c_char_p,
            _u8_p,
            ctypes.c_size_t,
            ctypes.POINTER(_ResponseP),
        ],
    ),
    ("lwolf_request_new", _status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_RequestP)]),
    ("lwolf_request_header", _status, [_RequestP, ctypes.c_char_p, ctypes.c_char_p]),
    ("lwolf_request_query", _status, [_RequestP, ctypes.c_char_p, ctypes.c_char_p]),
    ("lwolf_request_body", _status, [_RequestP, _u8_p, ctypes.c_size_t, ctypes.c_char_p]),
    ("lwolf_request_timeout_ms", _status, [_RequestP, ctypes.c_uint64]),
    ("lwolf_request_free", None, [_RequestP]),
    ("lwolf_client_send", _status, [_ClientP, _RequestP, ctypes.POINTER(_ResponseP)]),
    (
        "lwolf_client_send_to",
        _status,
        [_ClientP, _RequestP, _WriteFn, ctypes.c_void_p, ctypes.POINTER(_ResponseP)],
    ),
    ("lwolf_client_for_api", _status, [_ClientP, ctypes.c_char_p, ctypes.POINTER(_ClientP)]),
    ("lwolf_response_status", ctypes.c_uint16, [_ResponseP]),
    ("lwolf_response_body", _u8_p, [_ResponseP, _size_p]),
    ("lwolf_response_header", ctypes.c_char_p, [_ResponseP, ctypes.c_char_p]),
    ("lwolf_response_header_count", ctypes.c_size_t, [_ResponseP]),
    (
        "lwolf_response_header_at",
        _status,
        [_ResponseP, ctypes.c_size_t, _char_p_p, _char_p_p],
    ),
    ("lwolf_response_free", None, [_ResponseP]),
    ("lwolf_last_error_message", ctypes.c_char_p, []),
    ("lwolf_version", ctypes.c_char_p, []),
    ("lwolf_status_name", ctypes.c_char_p, [ctypes.c_uint32]),
    ("lwolf_set_log_callback", _status, [_LogFn, ctypes.c_void_p, ctypes.c_uint32]),
    (
        "lwolf_client_auth_headers",
        _status,
        [
            _ClientP,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char),
            ctypes.c_size_t,
            _size_p,
            ctypes.POINTER(ctypes.c_char),
            ctypes.c_size_t,
            _size_p,
        ],
    ),
    ("lwolf_client_dpop_nonce", _status, [_ClientP, ctypes.c_char_p, ctypes.c_char_p]),
    (
        "lwolf_client_reject_token",
        _status,
        [_ClientP, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32)],
    ),
    (
        "lwolf_client_reject_token_at",
        _status,
        [_ClientP, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32)],
    ),
    ("lwolf_last_error_http_status", ctypes.c_uint16, []),
    ("lwolf_last_error_code", ctypes.c_char_p, []),
]


def _library_names():
    if sys.platform == "win32":
        return ["lwolf_auth.dll"]
    if sys.platform == "darwin":
        return ["liblwolf_auth.dylib"]
    return ["liblwolf_auth.so"]


def _candidates():
    env = os.environ.get("LWOLF_AUTH_LIB")
    if env:
        yield Path(env)
        return
    here = Path(__file__).resolve().parent
    for name in _library_names():
        yield here / name
    root = here.parent.parent.parent
    for profile in ("release", "debug"):
        for name in _library_names():
            yield root / "target" / profile / name
    found = ctypes.util.find_library("lwolf_auth")
    if found:
        yield Path(found)


def _load():
    tried = []
    for candidate in _candidates():
        tried.append(str(candidate))
        # A bare name from find_library is resolved by the loader; a path must exist.
        if candidate.parent != Path(".") and not candidate.exists():
            continue
        lib = ctypes.CDLL(str(candidate))
        for name, restype, argtypes in _SIGNATURES:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        return lib, str(candidate)
    raise OSError(
        "liblwolf_auth not found (tried: %s); build it with `cargo build --release --lib` "
        "or set LWOLF_AUTH_LIB to its path" % ", ".join(tried)
    )


_lib, _lib_path = _load()

# The library's log records go to the `logging` logger "lwolf_auth": ERROR, WARNING, INFO,
# DEBUG, and TRACE as level 5 (each HTTP exchange). None holds a secret or a token.
TRACE = 5
logger = logging.getLogger("lwolf_auth")
_LOGGING_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}


@_LogFn
def _on_record(_userdata, level, message):
    # Runs on the library's threads too (a refresh): it must never raise into C.
    try:
        py_level = _LOGGING_LEVELS.get(level, logging.DEBUG)
        if logger.isEnabledFor(py_level):
            logger.log(py_level, "%s", message.decode("utf-8", "replace"))
    except Exception:  # noqa: BLE001 -- a log record is not worth a crash
        pass


def _stop_logging():
    # Before the interpreter goes: no record may reach Python after that. The call waits
    # for records under way on other threads.
    _lib.lwolf_set_log_callback(_LogFn(), None, 0)


_lib.lwolf_set_log_callback(_on_record, None, TRACE)
atexit.register(_stop_logging)


def library_path():
    """The path of the shared library this module loaded."""
    return _lib_path


def version():
    """The library's version, e.g. ``"0.1.0"``."""
    return _lib.lwolf_version().decode()


def status_name(status):
    """The name of a status code (``"LWOLF_ERR_CONFIG"``), or ``"LWOLF_UNKNOWN_STATUS"``."""
    return _lib.lwolf_status_name(status).decode()


def last_error_message():
    """This thread's last error message from the library ("" after a success)."""
    return _lib.lwolf_last_error_message().decode("utf-8", "replace")


def _check(status):
    """Raises the exception for a failed call. Must run on the thread that made the call:
    the message is per thread."""
    if status != OK:
        message = last_error_message()
        http_status = _lib.lwolf_last_error_http_status() or None
        error = _lib.lwolf_last_error_code().decode("utf-8", "replace") or None
        cls = _ERRORS.get(status, LwolfError)
        if cls is TransportError and message.startswith("transport error: timeout"):
            cls = Timeout
        raise cls(message or status_name(status), status, http_status, error)


def _encode(value, what):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str):
        value = str(value)
    if "\0" in value:
        raise InvalidArgument("%s contains a NUL character" % what, ERR_INVALID_ARGUMENT)
    return value.encode("utf-8")


# ----------------------------------------------------------------------------------------------
# Configuration


class Config:
    """The settings for clients: ``Config(client_id=..., client_secret=..., timeout_ms=5000)``.

    Keys and values are those of ``lwolf_config_set``; numbers may be given as numbers. An
    unknown key or a bad value raises ``InvalidArgument`` at once; whether the whole is
    complete and allowed is checked when a ``Client`` is made (``ConfigError``).
    Not thread-safe: build it on one thread.
    """

    def __init__(self, **settings):
        handle = _ConfigP()
        _check(_lib.lwolf_config_new(ctypes.byref(handle)))
        self._handle = handle
        try:
            self.update(settings)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_env(cls, **overrides):
        """The settings in the ``LWOLF_*`` environment variables, then ``overrides``."""
        self = cls.__new__(cls)
        handle = _ConfigP()
        _check(_lib.lwolf_config_from_env(ctypes.byref(handle)))
        self._handle = handle
        try:
            self.update(overrides)
        except BaseException:
            self.close()
            raise
        return self

    def set(self, key, value):
        """Sets one key. Raises ``InvalidArgument`` for an unknown key or a bad value."""
        _check(
            _lib.lwolf_config_set(self._handle, _encode(key, "key"), _encode(value, "value"))
        )
        return self

    def update(self, settings):
        for key, value in settings.items():
            self.set(key, value)
        return self

    def close(self):
        """Frees the configuration (zeroing the secret it holds). Clients made from it are
        not affected. Idempotent."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.lwolf_config_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- at interpreter exit the library may be gone
            pass


# ----------------------------------------------------------------------------------------------
# Responses and token metadata


class Headers(collections.abc.Mapping):
    """Response headers: looked up without regard to case, as in ``requests``; a name sent
    more than once gives its values joined with ``", "``. ``pairs`` keeps them as received."""

    def __init__(self, pairs):
        self.pairs = list(pairs)
        self._joined = {}
        for name, value in self.pairs:
            key = name.lower()
            self._joined[key] = self._joined[key] + ", " + value if key in self._joined else value

    def __getitem__(self, name):
        return self._joined[name.lower()]

    def __iter__(self):
        return iter(self._joined)

    def __len__(self):
        return len(self._joined)

    def __repr__(self):
        return "Headers(%r)" % (self.pairs,)


class HTTPError(LwolfError):
    """Raised by ``Response.raise_for_status()`` for a 4xx or 5xx answer; ``response`` is
    the answer, ``http_status`` its status."""

    def __init__(self, message, response):
        super().__init__(message)
        self.response = response
        self.http_status = response.status_code


class Response:
    """An API response, copied out of the library, shaped like ``requests``':
    ``status_code``, ``headers`` (case-insensitive), ``content`` (bytes), ``text``,
    ``json()``, ``ok``, ``raise_for_status()``. A streamed response (``stream_to=``) has an
    empty ``content``: its body went to the file. ``status``, ``body`` and ``header(name)``
    are the same things under this module's older names."""

    def __init__(self, status, headers, body, url=None):
        self.status_code = status
        self.headers = Headers(headers)
        self.content = body
        self.url = url

    @property
    def status(self):
        return self.status_code

    @property
    def body(self):
        return self.content

    def header(self, name, default=None):
        """The first value of header ``name``, compared without regard to case."""
        name = name.lower()
        for n, v in self.headers.pairs:
            if n.lower() == name:
                return v
        return default

    @property
    def ok(self):
        """Whether the status is below 400, as in ``requests``."""
        return self.status_code < 400

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.content)

    def raise_for_status(self):
        """Raises ``HTTPError`` for a 4xx or 5xx status; does nothing otherwise."""
        if self.status_code >= 400:
            kind = "client" if self.status_code < 500 else "server"
            raise HTTPError("%d %s error for %s" % (self.status_code, kind, self.url), self)

    def __repr__(self):
        return "<Response [%d], %d bytes>" % (self.status_code, len(self.content))


class TokenInfo:
    """Metadata of a token: ``fingerprint`` (safe to log), ``token_type`` (``"Bearer"``, or
    ``"DPoP"`` for a token bound to the client's DPoP key), ``expires_at``, ``refresh_at``,
    ``usable_until`` (UNIX seconds) and ``lifetime`` (seconds)."""

    __slots__ = ("fingerprint", "token_type", "expires_at", "refresh_at", "usable_until", "lifetime")

    def __init__(self, raw):
        self.fingerprint = raw.fingerprint.decode()
        self.token_type = raw.token_type.decode()
        self.expires_at = raw.expires_at_unix
        self.refresh_at = raw.refresh_at_unix
        self.usable_until = raw.usable_until_unix
        self.lifetime = raw.lifetime_secs

    def __repr__(self):
        return "<TokenInfo %s expires_at=%d>" % (self.fingerprint, self.expires_at)


def _take_response(handle, url=None):
    """Copies a response out of the library and frees it."""
    try:
        status = _lib.lwolf_response_status(handle)
        headers = []
        name, value = ctypes.c_char_p(), ctypes.c_char_p()
        for i in range(_lib.lwolf_response_header_count(handle)):
            _check(_lib.lwolf_response_header_at(handle, i, ctypes.byref(name), ctypes.byref(value)))
            headers.append((name.value.decode("latin-1"), value.value.decode("latin-1")))
        length = ctypes.c_size_t()
        body_ptr = _lib.lwolf_response_body(handle, ctypes.byref(length))
        if not body_ptr:
            _check(ERR_INTERNAL)
        body = ctypes.string_at(body_ptr, length.value)
        return Response(status, headers, body, url)
    finally:
        _lib.lwolf_response_free(handle)


def _pairs(items):
    """A mapping or an iterable of pairs, as pairs; ``None`` as none."""
    if items is None:
        return []
    if isinstance(items, collections.abc.Mapping):
        return list(items.items())
    return list(items)


# ----------------------------------------------------------------------------------------------
# The client


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

    def __init__(self, config=None, **settings):
        if config is not None and settings:
            raise TypeError("give either a Config or settings, not both")
        owned = config is None
        if owned:
            config = Config(**settings)
        try:
            handle = _ClientP()
            _check(_lib.lwolf_client_new(config._handle, ctypes.byref(handle)))
        finally:
            if owned:
                config.close()
        self._handle = handle

    @classmethod
    def from_env(cls, **overrides):
        """A client configured from the ``LWOLF_*`` environment variables, then ``overrides``."""
        with Config.from_env(**overrides) as config:
            return cls(config)

    @classmethod
    def _from_handle(cls, handle):
        self = cls.__new__(cls)
        self._handle = handle
        return self

    def for_tenant(self, lwt_client_id):
        """A client for another customer instance: the same settings and connection pool, its
        own token. Each client is closed on its own; either may outlive the other."""
        handle = _ClientP()
        _check(
            _lib.lwolf_client_for_tenant(
                self._handle, _encode(lwt_client_id, "lwt_client_id"), ctypes.byref(handle)
            )
        )
        return Client._from_handle(handle)

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
        return Client._from_handle(handle)

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



# ----------------------------------------------------------------------------------------------
# Adapters for requests and httpx: the token (and DPoP proof) on their requests


def _token_for(client, method, url):
    """The headers for a request to ``url``, or None when the token must not go there: the
    adapters act only on requests to their client's API origins (https, or http to loopback),
    and leave any other request as it is."""
    try:
        return client.auth_headers(method, url)
    except InvalidArgument:
        return None


def _send_again(client, request_url, authorization, status, headers):
    """Whether a request that carried our ``authorization`` to ``request_url`` and was
    answered ``status`` should be sent once more, and what that took: a DPoP nonce the
    server asked for, or the token renewed by the API's rules (bounded: at most once per 30 s
    for the identity and API, as the library's own requests). A request that carried no token
    of ours (a redirect to another host strips it), or went to another origin, is never sent
    again, and costs no token."""
    if status not in (401, 403) or not authorization:
        return False
    try:
        nonce = headers.get("DPoP-Nonce")
        if (status == 401 and nonce and authorization.startswith("DPoP ")
                and "use_dpop_nonce" in headers.get("WWW-Authenticate", "")):
            # The origin check, without a renewal (status 0 never renews).
            client.reject_token_at(request_url, 0, authorization)
            client.dpop_nonce(request_url, nonce)
            return True
        return client.reject_token_at(request_url, status, authorization)
    except InvalidArgument:
        return False


try:
    import requests as _requests
except ImportError:  # pragma: no cover - requests is optional
    _requests = None


if _requests is not None:

    class RequestsAuth(_requests.auth.AuthBase):
        """``requests`` authentication with a ``Client``'s token: ``Authorization`` (and, for
        a DPoP-bound token, a ``DPoP`` proof) on requests to the client's API origins, and on
        no others; a 401 (or a Back Office API's 403) to such a request renews the token and
        sends it once more (at most once per 30 s for the identity and API).

            session.get(url, auth=lwolf_auth.RequestsAuth(client))
        """

        def __init__(self, client):
            self.client = client

        def __call__(self, request):
            headers = _token_for(self.client, request.method, request.url)
            if headers is not None:
                request.headers.update(headers)
                request.register_hook("response", self._on_response)
            return request

        def _on_response(self, response, **kwargs):
            # Also called for the responses of redirects (requests copies the hooks): the
            # request is then the redirect's, without our token if it left the origin.
            request = response.request
            if getattr(request, "_lwolf_resent", False):
                return response
            authorization = request.headers.get("Authorization", "")
            if not _send_again(self.client, request.url, authorization,
                               response.status_code, response.headers):
                return response
            response.content  # read it, so the connection can be reused
            response.close()
            again = request.copy()
            again.headers.update(self.client.auth_headers(again.method, again.url))
            again._lwolf_resent = True
            resent = response.connection.send(again, **kwargs)
            resent.history.append(response)
            resent.request = again
            return resent

else:  # pragma: no cover

    class RequestsAuth:
        def __init__(self, client):
            raise ImportError("RequestsAuth needs the requests package (pip install requests)")


try:
    import httpx as _httpx
except ImportError:  # pragma: no cover - httpx is optional
    _httpx = None


if _httpx is not None:

    class HttpxAuth(_httpx.Auth):
        """``httpx`` authentication with a ``Client``'s token (sync and async clients alike):
        ``Authorization`` (and a ``DPoP`` proof for a DPoP-bound token) on requests to the
        client's API origins, and on no others; a 401 (or a Back Office API's 403) to such a
        request renews the token and sends it once more (at most once per 30 s).

            httpx.get(url, auth=lwolf_auth.HttpxAuth(client))
        """

        def __init__(self, client):
            self.client = client

        def auth_flow(self, request):
            url = str(request.url)
            headers = _token_for(self.client, request.method, url)
            if headers is None:
                yield request
                return
            request.headers.update(headers)
            response = yield request
            # After redirects, the response is the last hop's: judged by what that request
            # carried (httpx strips our token when a redirect leaves the origin).
            final = response.request
            if _send_again(self.client, str(final.url), final.headers.get("Authorization", ""),
                           response.status_code, response.headers):
                request.headers.update(self.client.auth_headers(request.method, url))
                yield request

else:  # pragma: no cover

    class HttpxAuth:
        def __init__(self, client):
            raise ImportError("HttpxAuth needs the httpx package (pip install httpx)")
