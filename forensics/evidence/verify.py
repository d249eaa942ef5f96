"""``forensics evidence verify``: recompute every hash of an archive or unpacked directory."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

from forensics.errors import NotFound
from forensics.evidence.writer import CHUNK, MANIFEST


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What a verification found. Intact means no list below has an entry."""

    target: str
    """The archive or directory verified."""
    files_checked: int
    """Files whose hash was recomputed."""
    changed: list[str]
    """Listed in the manifest with another hash now."""
    missing: list[str]
    """Listed in the manifest, absent now."""
    extra: list[str]
    """Present now, not listed in the manifest."""
    problems: list[str]
    """Anything else wrong: no manifest, a malformed line, an archive checksum mismatch."""
    archive_sha256: str | None
    """SHA-256 of the archive file itself (None for a directory)."""
    archive_checksum_ok: bool | None
    """Whether ``<archive>.sha256`` beside the archive matches (None when absent)."""

    @property
    def intact(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.problems) and (
            self.archive_checksum_ok is not False
        )


def parse_manifest(text: str) -> tuple[dict[str, str], list[str]]:
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            problems.append(f"{MANIFEST} line {number} is malformed")
            continue
        if name in entries:
            problems.append(f"{MANIFEST} lists {name!r} twice")
        entries[name] = digest
    return entries, problems


def _compare(
    target: str,
    manifest_text: str | None,
    actual: dict[str, str],
    problems: list[str],
    archive_sha: str | None = None,
    checksum_ok: bool | None = None,
) -> VerifyResult:
    if manifest_text is None:
        problems = [*problems, f"no {MANIFEST} found"]
        expected: dict[str, str] = {}
    else:
        expected, bad = parse_manifest(manifest_text)
        problems = [*problems, *bad]
    changed = sorted(n for n in expected if n in actual and actual[n] != expected[n])
    missing = sorted(n for n in expected if n not in actual)
    extra = sorted(n for n in actual if n not in expected)
    return VerifyResult(target, len(actual), changed, missing, extra, problems, archive_sha, checksum_ok)


def verify_dir(path: Path) -> VerifyResult:
    top = path
    if not (top / MANIFEST).exists():
        subdirs = [p for p in path.iterdir() if p.is_dir() and (p / MANIFEST).exists()]
        if len(subdirs) == 1:
            top = subdirs[0]
    actual: dict[str, str] = {}
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        for entry in dirnames + filenames:
            full = Path(dirpath) / entry
            rel = full.relative_to(top).as_posix()
            st = full.lstat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel} is not a regular file")
                continue
            if rel == MANIFEST:
                continue
            digest = hashlib.sha256()
            with open(full, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
            actual[rel] = digest.hexdigest()
    manifest = top / MANIFEST
    text = manifest.read_text(encoding="utf-8", errors="replace") if manifest.is_file() else None
    return _compare(str(path), text, actual, problems)


def verify_archive(path: Path) -> VerifyResult:
    whole = hashlib.sha256()
    with open(path, "rb") as raw:
        while chunk := raw.read(CHUNK):
            whole.update(chunk)
    archive_sha = whole.hexdigest()
    checksum_ok: bool | None = None
    sidecar = path.with_name(path.name + ".sha256")
    problems: list[str] = []
    if sidecar.is_file():
        recorded = sidecar.read_text(encoding="utf-8", errors="replace").split()
        checksum_ok = bool(recorded) and recorded[0] == archive_sha
        if not checksum_ok:
            problems.append(f"{sidecar.name} does not match the archive")
    actual: dict[str, str] = {}
    manifest_text: str | None = None
    tops: set[str] = set()
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not parts or member.name.startswith("/") or ".." in parts:
                    problems.append(f"unsafe member name {member.name!r}")
                    continue
                tops.add(parts[0])
                rel = "/".join(parts[1:])
                if member.isdir():
                    continue
                if not member.isfile():
                    problems.append(f"{member.name} is not a regular file")
                    continue
                src = tar.extractfile(member)
                assert src is not None
                if rel == MANIFEST:
                    manifest_text = src.read().decode("utf-8", "replace")
                    continue
                digest = hashlib.sha256()
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                actual[rel] = digest.hexdigest()
    except (tarfile.TarError, OSError, EOFError) as exc:
        problems.append(f"archive unreadable: {exc}")
    if len(tops) > 1:
        problems.append(f"more than one top directory: {sorted(tops)}")
    return _compare(str(path), manifest_text, actual, problems, archive_sha, checksum_ok)


def verify(path: Path) -> VerifyResult:
    if path.is_dir():
        return verify_dir(path)
    if path.is_file():
        return verify_archive(path)
    raise NotFound(f"{path} is neither an archive nor a directory")
