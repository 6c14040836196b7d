"""The status codes of the C ABI, and one exception class for each."""

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
