"""The body file: names escaped the way mactime reads them back, modes as fls writes them."""

from __future__ import annotations

import csv
import io
import shutil
import stat
from pathlib import Path

import pytest

from forensics.timeline.bodyfile import BodyEntry, escape_name, line, mode_string, render
from forensics.tools import run


def test_mode_string_is_fls_style() -> None:
    assert mode_string(stat.S_IFREG | 0o755) == "r/rrwxr-xr-x"
    assert mode_string(stat.S_IFDIR | 0o700) == "d/drwx------"
    assert mode_string(stat.S_IFLNK | 0o777) == "l/lrwxrwxrwx"
    assert mode_string(stat.S_IFREG | 0o4755) == "r/rrwsr-xr-x"
    assert mode_string(stat.S_IFCHR) == "c/c---------"


def test_names_cannot_add_fields_or_lines() -> None:
    assert escape_name(b"/a|b") == "/a%7Cb"
    assert escape_name(b"/100%") == "/100%25"
    assert escape_name(b"/new\nline\r") == "/new%0Aline%0D"
    assert escape_name(b"/caf\xc3\xa9") == "/café"
    assert escape_name(b"/bad\xff\xfe") == "/bad%FF%FE"
    assert escape_name(b"/c1\xc2\x85") == "/c1%C2%85"
    text = line(BodyEntry(b"/x|y\n", stat.S_IFREG | 0o644, 0, 0, 3, 1, 2, 3))
    assert text.count("|") == 10 and "\n" not in text


def _mactime(tmp_path: Path, entries: list[BodyEntry]) -> list[list[str]]:
    if shutil.which("mactime") is None:
        pytest.skip("mactime (Debian's sleuthkit) is not installed")
    body = tmp_path / "bodyfile.txt"
    body.write_bytes(render(entries))
    ran = run(["mactime", "-b", str(body), "-d", "-y", "-z", "UTC"], timeout=60)
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout.decode("utf-8", "surrogateescape")
    return list(csv.reader(io.StringIO(out)))


def test_mactime_reads_names_back_exactly(tmp_path: Path) -> None:
    names = [b"/web/etc/passwd", b"/web/tmp/a|b", b"/web/tmp/50%", b"/web/tmp/bad\xff"]
    entries = [BodyEntry(n, stat.S_IFREG | 0o644, 0, 0, 10 + i, 0, 1_700_000_000 + i, 0)
               for i, n in enumerate(names)]  # fmt: skip
    rows = _mactime(tmp_path, entries)
    assert rows[0][:3] == ["Date", "Size", "Type"]
    shown = {row[7]: row for row in rows[1:]}
    assert set(shown) == {n.decode("utf-8", "surrogateescape") for n in names}
    passwd = shown["/web/etc/passwd"]
    assert passwd[0].startswith("2023-11-14T22:13:20") and passwd[1] == "10" and passwd[3] == "r/rrw-r--r--"
    assert passwd[2] == "m..."
