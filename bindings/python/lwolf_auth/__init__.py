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

from .errors import *  # noqa: F401,F403 -- the status codes and exceptions
from .errors import _ERRORS  # noqa: F401 -- for tests
from .native import _lib, last_error_message, library_path, status_name, version  # noqa: F401
from .log import TRACE, logger  # noqa: F401
from .config import Config  # noqa: F401
from .response import Headers, HTTPError, Response, TokenInfo  # noqa: F401
from .client import Client  # noqa: F401
from .adapters import HttpxAuth, RequestsAuth  # noqa: F401

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
