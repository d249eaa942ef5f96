"""Installed packages read from an image's own databases, as container-diff's analyzers do.

- dpkg: ``/var/lib/dpkg/status`` (and distroless ``/var/lib/dpkg/status.d/*``), RFC 822 stanzas;
  only packages whose Status ends in ``installed``.
- apk: ``/lib/apk/db/installed``, ``P:``/``V:``/``I:`` lines per stanza.
- pip: ``.../site-packages/*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` (Name, Version).
- npm: ``.../node_modules/<name>/package.json`` and ``.../node_modules/@scope/<name>/package.json``.
- rpm: the sqlite rpmdb (``rpmdb.sqlite``, rpm >= 4.16) is copied to a private temp file and
  opened read-only; each row's header blob is parsed here (NAME, VERSION, RELEASE, EPOCH,
  ARCH, SIZE). A Berkeley DB (``Packages``) or ndb (``Packages.db``) rpmdb is not read: the
  analysis says so (:func:`skipped_databases`).

The parsers run during the image's one walk (:class:`forensics.images.analysis.ContentParser`)
and keep only the small records below. Every database is the suspect's: sizes are bounded and
a malformed entry is dropped, never trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterable
from email.parser import BytesHeaderParser

from forensics.images.analysis import ContentParser, Placed
from forensics.records import display_path

MANAGERS = ("dpkg", "apk", "rpm", "pip", "npm")
DB_LIMIT = 64 << 20
"""dpkg and apk databases read up to this size."""
RPM_LIMIT = 256 << 20
METADATA_LIMIT = 64 << 10
"""Leading bytes of a METADATA/PKG-INFO file (the headers come first)."""
PACKAGE_JSON_LIMIT = 1 << 20
MAX_PACKAGES = 200_000
"""Per database file."""

RPM_SQLITE = (b"/var/lib/rpm/rpmdb.sqlite", b"/usr/lib/sysimage/rpm/rpmdb.sqlite")
RPM_BDB = (b"/var/lib/rpm/Packages", b"/usr/lib/sysimage/rpm/Packages")
RPM_NDB = (b"/var/lib/rpm/Packages.db", b"/usr/lib/sysimage/rpm/Packages.db")

_PIP = re.compile(rb".*/(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO)")
_NPM = re.compile(rb".*/node_modules/(?:@[^/]+/)?[^/@][^/]*/package\.json")


@dataclasses.dataclass(frozen=True)
class Package:
    manager: str
    """One of :data:`MANAGERS`."""
    name: str
    version: str
    """As the database writes it (rpm: ``[epoch:]version-release``)."""
    path: str
    """The file it was read from."""
    size: int | None = None
    """Installed size in bytes, when the database records it (dpkg's KiB are multiplied)."""
    arch: str = ""


# --- dpkg and apk ---------------------------------------------------------------------------


def _stanzas(data: bytes) -> Iterable[list[str]]:
    text = data.decode("utf-8", "replace")
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines:
            yield lines


def parse_dpkg(path: bytes, data: bytes) -> list[Package]:
    out = []
    where = display_path(path)
    for lines in _stanzas(data):
        fields: dict[str, str] = {}
        for line in lines:
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation of a multi-line field (Description, Conffiles)
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        name, version = fields.get("package", ""), fields.get("version", "")
        status = fields.get("status")
        if not name or (status is not None and not status.endswith(" installed")):
            continue
        size_text = fields.get("installed-size", "")
        size = int(size_text) * 1024 if size_text.isdigit() else None
        out.append(Package("dpkg", name, version, where, size, fields.get("architecture", "")))
        if len(out) >= MAX_PACKAGES:
            break
    return out


def parse_apk(path: bytes, data: bytes) -> list[Package]:
    out = []
    where = display_path(path)
    for lines in _stanzas(data):
        fields: dict[str, str] = {}
        for line in lines:
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:].strip())
        if fields.get("P"):
            size_text = fields.get("I", "")
            out.append(Package("apk", fields["P"], fields.get("V", ""), where,
                               int(size_text) if size_text.isdigit() else None, fields.get("A", "")))  # fmt: skip
        if len(out) >= MAX_PACKAGES:
            break
    return out


# --- pip and npm ------------------------------------------------------------------------------


def parse_pip(path: bytes, data: bytes) -> list[Package]:
    head = data.split(b"\n\n", 1)[0] + b"\n\n"
    headers = BytesHeaderParser().parsebytes(head)
    name, version = headers.get("Name"), headers.get("Version")
    if not name:
        return []
    return [Package("pip", str(name).strip(), str(version or "").strip(), display_path(path))]


def parse_npm(path: bytes, data: bytes) -> list[Package]:
    try:
        value = json.loads(data)
    except ValueError:
        return []
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return []
    version = value.get("version")
    return [Package("npm", value["name"], version if isinstance(version, str) else "", display_path(path))]


# --- rpm: the sqlite database and the header blobs in it --------------------------------------

_RPM_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1009: "size", 1022: "arch"}
_RPM_INT32, _RPM_STRING, _RPM_I18N = 4, 6, 9
MAX_HEADER_ENTRIES = 100_000


def parse_rpm_header(blob: bytes) -> dict[str, str | int]:
    """NAME, VERSION, RELEASE, EPOCH, SIZE and ARCH from an rpm header blob (as rpmdb stores it:
    ``il`` and ``dl`` as big-endian int32, ``il`` 16-byte index entries, then ``dl`` bytes)."""
    if len(blob) < 8:
        raise ValueError("header shorter than 8 bytes")
    il, dl = struct.unpack(">ii", blob[:8])
    if not (0 < il <= MAX_HEADER_ENTRIES) or dl < 0 or 8 + il * 16 + dl > len(blob):
        raise ValueError(f"header sizes out of range (il={il}, dl={dl}, blob {len(blob)} bytes)")
    store = blob[8 + il * 16 : 8 + il * 16 + dl]
    out: dict[str, str | int] = {}
    for i in range(il):
        tag, kind, offset, count = struct.unpack(">iiii", blob[8 + i * 16 : 24 + i * 16])
        name = _RPM_TAGS.get(tag)
        if name is None or not (0 <= offset < len(store)) or count < 1:
            continue
        if kind in (_RPM_STRING, _RPM_I18N):
            end = store.find(b"\0", offset)
            if end < 0:
                continue
            out[name] = store[offset:end].decode("utf-8", "replace")
        elif kind == _RPM_INT32 and offset + 4 <= len(store):
            out[name] = struct.unpack(">i", store[offset : offset + 4])[0]
    return out


def rpm_version(fields: dict[str, str | int]) -> str:
    epoch = fields.get("epoch")
    version = f"{fields.get('version', '')}-{fields.get('release', '')}".rstrip("-")
    return f"{epoch}:{version}" if epoch not in (None, 0) else version


def parse_rpm_sqlite(path: bytes, data: bytes) -> list[Package]:
    """Packages from an rpmdb.sqlite's bytes: written to a private temp copy, opened read-only."""
    where = display_path(path)
    workdir = tempfile.mkdtemp(prefix="forensics-rpmdb-")
    try:
        copy = os.path.join(workdir, "rpmdb.sqlite")
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        uri = "file:" + copy + "?mode=ro&immutable=1"
        connection = sqlite3.connect(uri, uri=True)
        try:
            # The schema is the suspect's: no functions from its views or triggers.
            connection.execute("PRAGMA trusted_schema = OFF")
            rows = connection.execute("SELECT blob FROM Packages LIMIT ?", (MAX_PACKAGES,)).fetchall()
        finally:
            connection.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = []
    for (blob,) in rows:
        if not isinstance(blob, bytes):
            continue
        try:
            fields = parse_rpm_header(blob)
        except (ValueError, struct.error):
            continue
        name = fields.get("name")
        if not isinstance(name, str):
            continue
        size = fields.get("size")
        arch = fields.get("arch")
        out.append(Package("rpm", name, rpm_version(fields), where, size if isinstance(size, int) else None,
                           arch if isinstance(arch, str) else ""))  # fmt: skip
    return out


# --- which files, and the parsers for the one walk --------------------------------------------


def _wants_dpkg(path: bytes) -> int:
    return DB_LIMIT if path == b"/var/lib/dpkg/status" or path.startswith(b"/var/lib/dpkg/status.d/") else 0


def _wants_apk(path: bytes) -> int:
    return DB_LIMIT if path == b"/lib/apk/db/installed" else 0


def _wants_rpm(path: bytes) -> int:
    return RPM_LIMIT if path in RPM_SQLITE else 0


def _wants_pip(path: bytes) -> int:
    return METADATA_LIMIT if _PIP.fullmatch(path) else 0


def _wants_npm(path: bytes) -> int:
    return PACKAGE_JSON_LIMIT if _NPM.fullmatch(path) else 0


PARSERS = (
    ContentParser("packages.dpkg", _wants_dpkg, parse_dpkg),
    ContentParser("packages.apk", _wants_apk, parse_apk),
    ContentParser("packages.rpm", _wants_rpm, parse_rpm_sqlite),
    ContentParser("packages.pip", _wants_pip, parse_pip),
    ContentParser("packages.npm", _wants_npm, parse_npm),
)
"""Give these to :class:`forensics.images.analysis.ScanOptions` to read packages in the walk."""


def installed(final: dict[bytes, Placed]) -> dict[str, list[Package]]:
    """Packages by manager, from the final file system of a scan made with :data:`PARSERS`."""
    out: dict[str, list[Package]] = {m: [] for m in MANAGERS}
    for placed in final.values():
        for name, result in placed.record.parsed:
            if name.startswith("packages.") and isinstance(result, list):
                out[name.removeprefix("packages.")].extend(p for p in result if isinstance(p, Package))
    for packages in out.values():
        packages.sort(key=lambda p: (p.name, p.version, p.path))
    return out


def skipped_databases(final: dict[bytes, Placed]) -> list[str]:
    """Package databases present that are not read, each with why."""
    out = []
    has_sqlite = any(p in final for p in RPM_SQLITE)
    for path in RPM_BDB:
        if path in final and not has_sqlite:
            out.append(f"rpm: not supported (Berkeley DB): {display_path(path)}")
    for path in RPM_NDB:
        if path in final and not has_sqlite:
            out.append(f"rpm: not supported (ndb): {display_path(path)}")
    for path in RPM_SQLITE:
        placed = final.get(path)
        if placed is not None and placed.record.type == "file" and not placed.record.parsed:
            out.append(f"rpm: {display_path(path)} not read ({placed.record.size} bytes, limit {RPM_LIMIT})")
    return out
