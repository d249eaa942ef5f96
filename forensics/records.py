"""Small typed values shared by every area: why a value is missing, how to show a path."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import os
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


@dataclasses.dataclass(frozen=True)
class NotAvailable:
    """A value that could not be had, and why (volatility3's NotAvailableValue)."""

    reason: str
    """Why the value is missing, in words a responder can act on."""

    def __bool__(self) -> bool:
        return False


def char_escape(ch: str) -> str:
    """One unprintable character as an unambiguous escape: ``\\x1b`` below 0x100 (and for a
    byte that was not UTF-8, kept by ``surrogateescape``), ``\\u202e``, ``\\U000e0001``."""
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def display_path(raw: bytes | str) -> str:
    """A file name as text. Non-UTF-8 bytes become ``\\xNN`` escapes.

    The escape is for reading only; :func:`path_record` keeps the exact bytes too.
    """
    if isinstance(raw, str):
        raw = os.fsencode(raw)
    return raw.decode("utf-8", "backslashreplace")


def path_record(raw: bytes | str) -> dict[str, str]:
    """A name as JSON: readable text plus the exact bytes when they are not UTF-8."""
    if isinstance(raw, str):
        raw = os.fsencode(raw)
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "path": display_path(raw),
            "path_b64": base64.b64encode(raw).decode("ascii"),
        }


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


_SURROGATES = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` makes of non-UTF-8 bytes in a name."""


def to_jsonable(value: Any) -> Any:
    """Turn records (dataclasses, enums, bytes, paths, times) into JSON-ready values."""
    kind = type(value)
    # The common leaves first: a listing of thousands of paths is mostly plain strings.
    if kind is str:
        return display_path(os.fsencode(value)) if _SURROGATES.search(value) else value
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, NotAvailable):
            return {"not_available": value.reason}
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple: a record too
        return {name: to_jsonable(item) for name, item in zip(value._fields, value, strict=True)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, bytes):
        return display_path(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, str) and any(0xDC80 <= ord(c) <= 0xDCFF for c in value):
        return display_path(os.fsencode(value))
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    return json.dumps(to_jsonable(value), indent=indent, sort_keys=False, ensure_ascii=False)
