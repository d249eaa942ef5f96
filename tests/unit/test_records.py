"""to_jsonable: records become JSON values; a name that was not UTF-8 stays readable and exact."""

from __future__ import annotations

import dataclasses
import enum
import json
import os

from forensics.records import NotAvailable, to_jsonable


class Level(enum.StrEnum):
    HIGH = "high"


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    raw: bytes
    level: Level
    digest: str | NotAvailable | None
    values: tuple[object, ...] = ()


def test_leaves_and_records() -> None:
    odd = os.fsdecode(b"/tmp/\xff\xfe name")
    row = Row(
        odd, b"/bin/\xc3\xa9\xff", Level.HIGH, NotAvailable("not read"), (1, 2.5, True, None, "plain é")
    )
    assert to_jsonable(row) == {
        "name": "/tmp/\\xff\\xfe name",
        "raw": "/bin/é\\xff",
        "level": "high",
        "digest": {"not_available": "not read"},
        "values": [1, 2.5, True, None, "plain é"],
    }
    json.dumps(to_jsonable([row, {"k": odd}]))  # no lone surrogate reaches the encoder
    assert to_jsonable(Level.HIGH) == "high"  # a str subclass is an enum first
