"""The settings a client is made with."""

import ctypes

from .native import _check, _ConfigP, _encode, _lib

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
