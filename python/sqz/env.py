"""SQZ_* settings that the Python package reads itself, by the same rules as
libsqz (common/env.h), so that a value means the same on both sides."""
import math
import os
import re

DEFAULT_TIMEOUT_SECONDS = 300.0
MIN_TIMEOUT_SECONDS = 1e-3
MAX_TIMEOUT_SECONDS = 1e6

# common/strict_number.h's decimal: digits, optional fraction and exponent; no sign, no inf/nan.
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def timeout_seconds(environ=None):
    """SQZ_TIMEOUT in seconds (300 when unset or empty). Raises ValueError,
    with libsqz's message, for anything libsqz refuses (0 included)."""
    text = (os.environ if environ is None else environ).get("SQZ_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if math.isfinite(value) and MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
            return value
    raise ValueError("SQZ_TIMEOUT=%s: expected a number of seconds from %g to %g (e.g. 30 or 0.5)"
                     % (text, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS))
