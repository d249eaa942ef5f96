"""EvidenceWriter: the one sink through which every evidence file is written.

It refuses unsafe names and overwrites, hashes while it writes, and keeps the index from
which MANIFEST.sha256 is made. Files that grow (the acquisition log) are hashed when the
archive is sealed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forensics.errors import EvidenceError
from forensics.evidence.names import check_relpath
from forensics.records import to_jsonable

MANIFEST = "MANIFEST.sha256"
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class EvidenceFile:
    """One file in the archive."""

    path: str
    """Relative path inside the archive's top directory."""
    size: int
    """Bytes written."""
    sha256: str
    """SHA-256 of exactly what was written."""
    truncated: bool = False
    """True when a size cap cut the copy short (the source was larger)."""


class Sink:
    """What every sink offers on top of ``add_stream``."""

    def add_stream(self, name: str, chunks: Iterable[bytes], limit: int | None = None) -> EvidenceFile:
        raise NotImplementedError

    def add_bytes(self, name: str, data: bytes) -> EvidenceFile:
        return self.add_stream(name, [data])

    def add_json(self, name: str, value: Any) -> EvidenceFile:
        return self.add_stream(name, [json_bytes(value)])

    def add_jsonl(self, name: str, values: Iterable[Any]) -> EvidenceFile:
        return self.add_stream(name, jsonl_chunks(values))

    def add_fd(self, name: str, fd: int, limit: int | None = None) -> EvidenceFile:
        return self.add_stream(name, fd_chunks(fd, limit), limit)


class EvidenceWriter(Sink):
    """Writes evidence files below one staging directory."""

    def __init__(self, top: Path) -> None:
        self.top = Path(top)
        self.top.mkdir(parents=True, exist_ok=False)
        self._files: dict[str, EvidenceFile] = {}
        self._growing: set[str] = set()
        self._lock = threading.Lock()

    def _claim(self, name: str) -> Path:
        check_relpath(name)
        if name == MANIFEST:
            raise EvidenceError(f"{MANIFEST} is written only when the archive is sealed")
        with self._lock:
            if name in self._files or name in self._growing:
                raise EvidenceError(f"evidence file {name!r} exists already")
            self._files[name] = EvidenceFile(name, 0, "")
        path = self.top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_stream(self, name: str, chunks: Iterable[bytes], limit: int | None = None) -> EvidenceFile:
        """Write chunks to ``name``; stop after ``limit`` bytes and mark the file truncated."""
        path = self._claim(name)
        digest = hashlib.sha256()
        size = 0
        truncated = False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    if limit is not None and size + len(chunk) > limit:
                        chunk = chunk[: limit - size]
                        truncated = True
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if truncated:
                        break
        except BaseException:
            with self._lock:
                del self._files[name]
            raise
        record = EvidenceFile(name, size, digest.hexdigest(), truncated)
        with self._lock:
            self._files[name] = record
        return record

    def add_text(self, name: str, text: str) -> EvidenceFile:
        return self.add_stream(name, [text.encode("utf-8", "backslashreplace")])

    def append_line(self, name: str, line: str) -> None:
        """Append to a growing text file (hashed when sealed, not now)."""
        check_relpath(name)
        with self._lock:
            if name in self._files:
                raise EvidenceError(f"evidence file {name!r} exists already")
            self._growing.add(name)
            path = self.top / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as out:
                out.write(line.rstrip("\n") + "\n")

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._files or name in self._growing

    def files(self) -> list[EvidenceFile]:
        """Every file written so far, growing files hashed as they stand now."""
        with self._lock:
            records = dict(self._files)
            growing = sorted(self._growing)
        for name in growing:
            records[name] = hash_file(self.top / name, name)
        return [records[k] for k in sorted(records)]

    def write_manifest(self) -> list[EvidenceFile]:
        """Seal: write MANIFEST.sha256 over every other file, in ``sha256sum -c`` format."""
        files = self.files()
        lines = "".join(f"{f.sha256}  {f.path}\n" for f in files)
        (self.top / MANIFEST).write_text(lines, encoding="utf-8")
        return files


def hash_file(path: Path, name: str) -> EvidenceFile:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return EvidenceFile(name, size, digest.hexdigest())


class StepSink(Sink):
    """A step's handle on the writer. Closed when the step ends or times out, so a step
    that overran its timeout cannot add files after the runner has moved on."""

    def __init__(self, writer: EvidenceWriter, step: str) -> None:
        self._writer = writer
        self.step = step
        self._closed = False
        self.written: list[EvidenceFile] = []

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> EvidenceWriter:
        if self._closed:
            raise EvidenceError(f"step {self.step!r} has ended; its sink is closed")
        return self._writer

    def add_stream(self, name: str, chunks: Iterable[bytes], limit: int | None = None) -> EvidenceFile:
        record = self._check().add_stream(name, chunks, limit)
        self.written.append(record)
        return record


def json_bytes(value: Any) -> bytes:
    text = json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def jsonl_chunks(values: Iterable[Any]) -> Iterable[bytes]:
    for value in values:
        line = json.dumps(to_jsonable(value), ensure_ascii=False) + "\n"
        yield line.encode("utf-8", "backslashreplace")


def fd_chunks(fd: int, limit: int | None) -> Iterable[bytes]:
    """Read an fd in chunks; with a limit, read one byte past it so truncation shows."""
    read = 0
    while True:
        want = CHUNK if limit is None else min(CHUNK, limit + 1 - read)
        if want <= 0:
            return
        chunk = os.read(fd, want)
        if not chunk:
            return
        read += len(chunk)
        yield chunk
