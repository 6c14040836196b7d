"""Responses, shaped like `requests`', and the token's metadata."""

import collections.abc
import ctypes
import json as _json

from .errors import ERR_INTERNAL, LwolfError
from .native import _check, _lib

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

    def __init__(self, status, headers, body, url=None, request_id=None):
        self.status_code = status
        self.headers = Headers(headers)
        self.content = body
        self.url = url
        # The id the call carried (``X-Request-ID`` by default); None when ids are off.
        self.request_id = request_id

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
        request_id = _lib.lwolf_response_request_id(handle)
        return Response(status, headers, body, url,
                        request_id.decode("latin-1") if request_id is not None else None)
    finally:
        _lib.lwolf_response_free(handle)


def _pairs(items):
    """A mapping or an iterable of pairs, as pairs; ``None`` as none."""
    if items is None:
        return []
    if isinstance(items, collections.abc.Mapping):
        return list(items.items())
    return list(items)
