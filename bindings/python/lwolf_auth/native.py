"""The shared library: found, loaded, and every function declared (ctypes' default restype
is int, which would truncate a returned pointer); the checks every call's status goes
through."""

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

from .errors import _ERRORS, ERR_INVALID_ARGUMENT, OK, InvalidArgument, LwolfError, Timeout, TransportError

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
# int32_t (*lwolf_sign_fn)(void *userdata, const uint8_t *input, size_t input_len,
#                          uint8_t *sig, size_t sig_cap, size_t *sig_len)
_SignFn = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))


class _Stats(ctypes.Structure):
    """``lwolf_stats``, field for field."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("token_requests", ctypes.c_uint64),
        ("token_failures", ctypes.c_uint64),
        ("tokens_shared", ctypes.c_uint64),
        ("forced_renewals", ctypes.c_uint64),
        ("renewals_declined", ctypes.c_uint64),
        ("retries", ctypes.c_uint64),
        ("api_requests", ctypes.c_uint64),
        ("throttled", ctypes.c_uint64),
        ("token_expires_at_ms", ctypes.c_int64),
    ]
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
    ("lwolf_client_transact", _status, [_ClientP, ctypes.POINTER(_ClientP)]),
    ("lwolf_client_stats", _status, [_ClientP, ctypes.POINTER(_Stats)]),
    ("lwolf_config_set_signer", _status, [ctypes.c_void_p, _SignFn, ctypes.c_void_p]),
    ("lwolf_response_request_id", ctypes.c_char_p, [_ResponseP]),
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
    ("lwolf_last_error_transport_kind", ctypes.c_char_p, []),
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
        "liblwolf_auth not found (tried: %s); build it with `cargo build --release -p lwolf-auth-ffi` "
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
        http_status = _lib.lwolf_last_error_http_status() or None
        error = _lib.lwolf_last_error_code().decode("utf-8", "replace") or None
        cls = _ERRORS.get(status, LwolfError)
        # The kind the library names, never the message's words.
        if cls is TransportError and _lib.lwolf_last_error_transport_kind() == b"timeout":
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
