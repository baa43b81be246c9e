"""The settings schema: types with their ranges, validation with one-line errors, and the
words `blob config` and `--help` print, all from one definition per setting."""

from .describe import describe, type_text
from .flags import add_flags, read_flags
from .types import SEED_LIMIT, SETTINGS
from .validate import settings, validate, validate_value

__all__ = [
    "SEED_LIMIT",
    "SETTINGS",
    "add_flags",
    "describe",
    "read_flags",
    "settings",
    "type_text",
    "validate",
    "validate_value",
]
