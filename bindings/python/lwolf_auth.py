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

import ctypes
import ctypes.util
import json as _json
import os
import sys
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


class LwolfError(Exception):
    """A failure reported by the library. ``status`` is the C status code, ``message`` the
    library's description (which never contains the client secret or a token)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
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


class TransportError(LwolfError):
    """LWOLF_ERR_TRANSPORT: DNS, connect, TLS, I/O or timeout."""

    status = ERR_TRANSPORT


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


class _TokenInfo(ctypes.Structure):
    """``lwolf_token_info``, field for field."""

    _fields_ = [
        ("expires_at_unix", ctypes.c_int64),
        ("refresh_at_unix", ctypes.c_int64),
        ("usable_until_unix", ctypes.c_int64),
        ("lifetime_secs", ctypes.c_uint64),
        ("fingerprint", ctypes.c_char * 16),
    ]


_status = ctypes.c_uint32
_ConfigP = ctypes.POINTER(_Config)
_ClientP = ctypes.POINTER(_Client)
_ResponseP = ctypes.POINTER(_Response)
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
    root = here.parent.parent
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
        raise _ERRORS.get(status, LwolfError)(message or status_name(status), status)


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


class Response:
    """An API response, copied out of the library: ``status``, ``headers`` (a list of
    ``(name, value)`` pairs, names in lower case, in the order received) and ``body``
    (bytes)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """The first value of header ``name``, compared without regard to case."""
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    @property
    def ok(self):
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.body)

    def __repr__(self):
        return "<Response %d, %d bytes>" % (self.status, len(self.body))


class TokenInfo:
    """Metadata of a token: ``fingerprint`` (safe to log), ``expires_at``, ``refresh_at``,
    ``usable_until`` (UNIX seconds) and ``lifetime`` (seconds)."""

    __slots__ = ("fingerprint", "expires_at", "refresh_at", "usable_until", "lifetime")

    def __init__(self, raw):
        self.fingerprint = raw.fingerprint.decode()
        self.expires_at = raw.expires_at_unix
        self.refresh_at = raw.refresh_at_unix
        self.usable_until = raw.usable_until_unix
        self.lifetime = raw.lifetime_secs

    def __repr__(self):
        return "<TokenInfo %s expires_at=%d>" % (self.fingerprint, self.expires_at)


def _take_response(handle):
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
        return Response(status, headers, body)
    finally:
        _lib.lwolf_response_free(handle)


# ----------------------------------------------------------------------------------------------
# The client


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

    def invalidate(self):
        """Drops the cached token; the next call fetches a new one."""
        _check(_lib.lwolf_client_invalidate(self._handle))

    def request(self, method, path, body=None):
        """Sends ``method`` to ``api_base_url + path`` (or an absolute URL on the same origin)
        with the bearer token, and returns a ``Response`` for any HTTP status.

        ``body`` may be bytes, str, or anything ``json.dumps`` takes (dict, list...); it is
        sent as ``application/json``. Errors mean no response could be had."""
        if body is None:
            data, length = None, 0  # NULL and 0: no body
        else:
            if isinstance(body, str):
                raw = body.encode("utf-8")
            elif isinstance(body, (bytes, bytearray, memoryview)):
                raw = bytes(body)
            else:
                raw = _json.dumps(body).encode("utf-8")
            length = len(raw)
            buf = (ctypes.c_uint8 * max(1, length))()
            ctypes.memmove(buf, raw, length)
            data = ctypes.cast(buf, _u8_p)
        handle = _ResponseP()
        _check(
            _lib.lwolf_client_request(
                self._handle,
                _encode(method, "method"),
                _encode(path, "path"),
                data,
                length,
                ctypes.byref(handle),
            )
        )
        return _take_response(handle)

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

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

