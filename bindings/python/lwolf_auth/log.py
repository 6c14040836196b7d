"""The library's log records, sent to the `logging` logger "lwolf_auth"."""

import atexit
import logging

from .native import _LogFn, _lib

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
