"""Seal a staging directory into ``<name>.tar.gz`` with ``<name>.tar.gz.sha256`` beside it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

from forensics.evidence.writer import MANIFEST


@dataclasses.dataclass(frozen=True)
class SealedArchive:
    """The archive as written to the output directory."""

    path: Path
    """The .tar.gz file."""
    sha256: str
    """SHA-256 of the whole archive file."""
    size: int
    """Archive size in bytes."""
    checksum_file: Path
    """``<archive>.sha256`` in ``sha256sum -c`` format."""


class _HashingFile:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner names of the examiner's machine mean nothing in evidence; ids and times stay.
    info.uname = info.gname = ""
    return info


def seal(top: Path, output_dir: Path, keep_staging: bool = False) -> SealedArchive:
    """Pack ``top`` (which must hold MANIFEST.sha256) as ``output_dir/<top.name>.tar.gz``.

    Members are added in sorted order below one top directory named like the archive.
    The archive's hash is computed while it is written, then written beside it.
    """
    if not (top / MANIFEST).is_file():
        raise FileNotFoundError(f"{top / MANIFEST} is missing: write the manifest first")
    name = top.name + ".tar.gz"
    final = output_dir / name
    partial = output_dir / (name + ".partial")
    checksum = output_dir / (name + ".sha256")
    try:
        hashing = _write(top, partial)
        # The checksum first, then the rename: a failure (a full disk) leaves no .tar.gz at all,
        # never one without its checksum or a half-written one under the final name.
        checksum.write_text(f"{hashing.digest.hexdigest()}  {name}\n", encoding="utf-8")
        os.replace(partial, final)
    except FileExistsError:
        raise  # another run's partial file: not ours to remove
    except BaseException:
        for leftover in (partial, checksum):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    if not keep_staging:
        shutil.rmtree(top)
    return SealedArchive(final, hashing.digest.hexdigest(), hashing.size, checksum)


def _write(top: Path, partial: Path) -> _HashingFile:
    with open(partial, "xb") as raw:
        hashing = _HashingFile(raw)
        with tarfile.open(fileobj=hashing, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.add(top, arcname=top.name, recursive=False, filter=_reset)
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                rel = Path(dirpath).relative_to(top)
                for entry in sorted(dirnames) + sorted(filenames):
                    tar.add(
                        Path(dirpath) / entry,
                        arcname=str(Path(top.name) / rel / entry),
                        recursive=False,
                        filter=_reset,
                    )
        raw.flush()
        os.fsync(raw.fileno())
    return hashing
