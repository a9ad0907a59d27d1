"""`FIELD=VALUE` command-line settings for ExtractorConfig (shared by the CLIs).

Values are converted to the type of the field's default (bool accepts
true/false/1/0/yes/no/on/off), so `--set score_threshold=0.5` means the same
as `score_threshold: 0.5` in a parameter file.
"""
from __future__ import annotations

from dataclasses import fields

from ..config import ExtractorConfig

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(name: str, text: str):
    defaults = {f.name: f.default for f in fields(ExtractorConfig)}
    if name not in defaults:
        raise ValueError(f"unknown extractor setting {name!r}; known: "
                         f"{', '.join(sorted(defaults))}")
    kind = type(defaults[name])
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false; got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {kind.__name__}; got {text!r}") from None


def parse_assignment(text: str) -> tuple[str, object]:
    """'FIELD=VALUE' -> (field, typed value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected FIELD=VALUE, got {text!r}")
    name = name.strip()
    return name, parse_value(name, value.strip())
