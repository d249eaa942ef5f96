"""One reader for every image source: the layer dirs on disk, the engine's export stream,
a ``docker save`` tar (file or unpacked dir) and an OCI layout (dir or tar).

Interface (used by the image analyses and by other areas)::

    source = open_image(ctx, "nginx:latest")      # or open_path("/cases/x.tar")
    for layer in source.walk():                   # every layer once
        for entry in layer.entries():             # Entry: path, type, mode, uid, gid, ...
            data = entry.read(1 << 20)            # content, bounded; only during iteration
    source.config, source.layer_keys, source.checks, source.problems

``walk()`` yields layers lowest first, except for the engine's export stream, where they
come in archive order and ``layer.key`` is placed by ``source.layer_keys`` (known once
the walk is over, since the stream's ``manifest.json`` comes last). ``source.config`` is
the image config; for the stream it is known after the walk too.

Nothing is extracted. Every archive is hostile: member names are validated here (no
``..``, no absolute name, no NUL), PAX and GNU long-name headers are bounded, entry
counts are bounded, and a ``manifest.json`` or ``index.json`` that names anything but a
digest-shaped path is refused. Blob digests and diff IDs are recomputed while the bytes
stream past and compared with what the manifest and config claim
(:class:`DigestCheck`); the caller turns a mismatch into a Finding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from forensics.errors import NotFound, UnsafePath, UsageProblem
from forensics.host.disk import DiskImage, DockerDisk, chain_ids, is_digest, is_hex64
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable, display_path

MAX_PAX = 1 << 20
"""Largest PAX or GNU long-name header accepted (Go CVE-2022-2879, CPython CVE-2024-6232)."""
MAX_MEMBERS = 2_000_000
"""Entries read from one layer (or one outer archive) before it is cut short."""
MAX_META = 16 << 20
"""Largest manifest, index or config read."""
MAX_LAYERS = 1024
MAX_ENTRY_SIZE = 1 << 40
"""An entry claiming more than this is recorded as a problem (its bytes are still skipped)."""
MAX_PROBLEMS = 1000

TYPES = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque")
"""Entry types. ``whiteout`` deletes ``path`` in lower layers; ``opaque`` hides the lower
children of the directory ``path`` (OCI layer spec; overlay2's 0/0 char devices and
``trusted.overlay.opaque`` xattrs are mapped to the same two)."""

_LEGACY_CONFIG = re.compile(r"[0-9a-f]{64}\.json")
_LEGACY_LAYER = re.compile(r"[0-9a-f]{64}/layer\.tar")
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


Reader = Callable[[int], Iterator[bytes]]
"""Gives an entry's content in chunks, at most the limit given."""


class BadMember(UnsafePath):
    """A tar member name that must not become a path."""


class BadArchive(UsageProblem):
    """An archive whose manifest, index or layout cannot be used as an image."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One entry of one layer, as the layer holds it (whiteouts not yet applied)."""

    path: bytes
    """Absolute, normalised path inside the image (``b"/etc/passwd"``)."""
    type: str
    """One of :data:`TYPES`."""
    mode: int
    """Permission bits, setuid/setgid/sticky included (``0o7777`` mask)."""
    uid: int
    gid: int
    size: int
    """Bytes of content (0 for all but regular files; a hard link has 0, as in tar)."""
    mtime: float
    link: bytes = b""
    """A symlink's target as stored, or a hard link's target as an absolute path."""
    _reader: Reader | None = dataclasses.field(default=None, repr=False, compare=False)

    def chunks(self, limit: int) -> Iterator[bytes]:
        """The content in pieces, at most ``limit`` bytes; only while this entry is current."""
        if self._reader is None:
            return iter(())
        return self._reader(limit)

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of content (empty for anything but a regular file)."""
        return b"".join(self.chunks(limit))


@dataclasses.dataclass(frozen=True)
class DigestCheck:
    """A digest the source claimed, and the one computed from the bytes."""

    what: str
    """``config``, ``layer N blob`` or ``layer N diff_id``, ``layer N layerdb diff``."""
    expected: str
    actual: str | NotAvailable

    @property
    def ok(self) -> bool:
        return isinstance(self.actual, str) and self.actual == self.expected


@dataclasses.dataclass
class LayerReading:
    """One layer being read. Its digests are filled in once its entries are exhausted."""

    key: str
    """The source's own name for the layer (archive member, blob digest, diff dir)."""
    _entries: Callable[[LayerReading], Iterator[Entry]]
    blob_digest: str | NotAvailable = dataclasses.field(default_factory=lambda: NotAvailable("not computed"))
    """sha256 of the layer as stored (compressed or not)."""
    diff_id: str | NotAvailable = dataclasses.field(default_factory=lambda: NotAvailable("not computed"))
    """sha256 of the uncompressed layer tar."""
    problems: list[str] = dataclasses.field(default_factory=list)

    def entries(self) -> Iterator[Entry]:
        return self._entries(self)

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


@dataclasses.dataclass
class LayerInfo:
    """What the manifest and config say about a layer."""

    index: int
    diff_id: str
    """From the config's ``rootfs.diff_ids``."""
    digest: str
    """Blob digest from the manifest (the diff_id when the source has none)."""
    media_type: str = ""
    size: int | None = None
    """Stored size the manifest (or layerdb) gives."""


class ImageSource:
    """Base of every source. Subclasses fill the fields and implement :meth:`walk`."""

    kind = "unknown"

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.config: dict[str, Any] = {}
        self.config_digest: str = ""
        """``sha256:<hex>`` of the config bytes: the image ID."""
        self.repo_tags: list[str] = []
        self.repo_digests: list[str] = []
        self.layers: list[LayerInfo] = []
        self.layer_keys: list[str] = []
        """Layer keys, lowest first (for the stream: complete after :meth:`walk`)."""
        self.checks: list[DigestCheck] = []
        self.problems: list[str] = []

    def walk(self) -> Iterator[LayerReading]:
        raise NotImplementedError

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def identity(self, key: str) -> str | None:
        """A name for the stored bytes of the layer ``key`` that is the same in every source
        reading those very bytes (another image's source sharing the layer), so a layer read
        for one image can stand for it in the next; None: not shared (a stream, a tar)."""
        return None

    def close(self) -> None:
        """Release open files (a no-op for most sources)."""

    def _set_config(self, raw: bytes, expected: str | None) -> None:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.config_digest = digest
        if expected is not None:
            self.checks.append(DigestCheck("config", expected, digest))
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise BadArchive(f"{self.ref}: image config is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise BadArchive(f"{self.ref}: image config is not a JSON object")
        self.config = value

    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(ids, list):
            self.problem("config has no rootfs.diff_ids")
            return []
        good = [d for d in ids if is_digest(d)]
        if len(good) != len(ids):
            self.problem(f"{len(ids) - len(good)} diff_ids in the config are not sha256 digests: ignored")
        return good[:MAX_LAYERS]


# --- tar members, read safely ---------------------------------------------------------


class _SafeTarInfo(tarfile.TarInfo):
    """TarInfo that refuses oversized PAX and GNU long-name headers before reading them."""

    def _proc_pax(self, tarfile: Any) -> Any:
        if self.size > MAX_PAX:
            raise tarfile_header_error(f"PAX header of {self.size} bytes (limit {MAX_PAX})")
        return super()._proc_pax(tarfile)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile: Any) -> Any:
        if self.size > MAX_PAX:
            raise tarfile_header_error(f"GNU long name of {self.size} bytes (limit {MAX_PAX})")
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]

    def _proc_sparse(self, tarfile: Any) -> Any:
        raise tarfile_header_error("GNU sparse member: not supported in image layers")


def tarfile_header_error(message: str) -> tarfile.HeaderError:
    return tarfile.HeaderError(message)


def member_path(name: str | bytes) -> bytes:
    """A tar member name as an absolute path inside the image; :class:`BadMember` if unsafe."""
    raw = os.fsencode(name) if isinstance(name, str) else name
    if b"\0" in raw:
        raise BadMember(f"NUL byte in member name {display_path(raw)!r}")
    if raw.startswith(b"/"):
        raise BadMember(f"absolute member name {display_path(raw)!r}")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise BadMember(f"'..' in member name {display_path(raw)!r}")
    return b"/" + b"/".join(parts)


def archive_name(name: str) -> str:
    """A member name of an outer archive, normalised (``./x`` -> ``x``); BadMember if unsafe."""
    return os.fsdecode(member_path(name)[1:])


def _open_tar_stream(fileobj: IO[bytes]) -> tarfile.TarFile:
    return tarfile.open(
        fileobj=fileobj, mode="r|", tarinfo=_SafeTarInfo, encoding="utf-8", errors="surrogateescape"
    )


def _bounded(fileobj: IO[bytes], limit: int) -> Iterator[bytes]:
    remaining = limit
    while remaining > 0:
        chunk = fileobj.read(min(remaining, 1 << 20))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


class _Hashing(io.RawIOBase):
    """Reads through to another file object, hashing every byte; can peek at the start."""

    def __init__(self, inner: IO[bytes] | Any) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.count = 0
        self.data_end = 0
        """Offset just past the last byte that was not zero (a tar ends in zeros only)."""
        self._head = b""

    def readable(self) -> bool:
        return True

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self.inner.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, size: int | None = -1) -> bytes:
        if self._head:
            if size is None or size < 0 or size >= len(self._head):
                data, self._head = self._head, b""
                if size is None or size < 0:
                    data += self.inner.read()
                elif size > len(data):
                    data += self.inner.read(size - len(data))
            else:
                data, self._head = self._head[:size], self._head[size:]
        else:
            data = self.inner.read() if size is None or size < 0 else self.inner.read(size)
        self.sha.update(data)
        stripped = len(data.rstrip(b"\0"))
        if stripped:
            self.data_end = self.count + stripped
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _entry_type(member: tarfile.TarInfo) -> str | None:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr():
        return "char"
    if member.isblk():
        return "block"
    if member.isfifo():
        return "fifo"
    return None


def tar_entries(fileobj: IO[bytes], layer: LayerReading) -> Iterator[Entry]:
    """The entries of one (uncompressed) layer tar read in stream mode, validated.

    A bad member is recorded on ``layer`` and skipped; a broken header ends the layer.
    """
    try:
        archive = _open_tar_stream(fileobj)
    except tarfile.TarError as exc:
        layer.problem(f"not a tar archive: {exc}")
        return
    count = 0
    try:
        for member in archive:
            count += 1
            if count > MAX_MEMBERS:
                layer.problem(f"more than {MAX_MEMBERS} entries: the rest is not read")
                return
            entry = _tar_entry(archive, member, layer)
            if entry is not None:
                yield entry
        if isinstance(fileobj, _Hashing):
            # tarfile ends quietly at a header it cannot parse (a bad checksum) or at a zero
            # block; whatever follows would be hidden from the analysis without this.
            fileobj.drain()
            if fileobj.data_end > archive.offset:
                layer.problem(f"{fileobj.data_end - archive.offset} bytes after the end of the tar at offset "
                              f"{archive.offset} (a broken header or an early end marker): not read")  # fmt: skip
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
        layer.problem(f"layer tar broken after {count} entries: {exc}")


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def _tar_entry(archive: tarfile.TarFile, member: tarfile.TarInfo, layer: LayerReading) -> Entry | None:
    try:
        path = member_path(member.name)
    except BadMember as exc:
        layer.problem(f"refused member: {exc}")
        return None
    if path == b"/":
        return None
    if member.size > MAX_ENTRY_SIZE or member.size < 0:
        layer.problem(f"{display_path(path)!r} claims {member.size} bytes")
        return None
    parent, _, base = path.rpartition(b"/")
    parent = parent or b"/"

    def mk(p: bytes, k: str, size: int = 0, link: bytes = b"", reader: Reader | None = None) -> Entry:
        return Entry(
            p, k, member.mode & 0o7777, member.uid, member.gid, size, float(member.mtime), link, reader
        )

    if base.startswith(b".wh."):
        if base == b".wh..wh..opq":
            return mk(parent, "opaque")
        target = base[4:]
        if target in (b"", b".", b".."):
            layer.problem(f"refused whiteout {display_path(path)!r}")
            return None
        return mk(parent.rstrip(b"/") + b"/" + target, "whiteout")
    kind = _entry_type(member)
    if kind is None:
        layer.problem(f"{display_path(path)!r}: unsupported tar type {member.type!r}: skipped")
        return None
    link = b""
    if kind == "symlink":
        link = os.fsencode(member.linkname)
    elif kind == "hardlink":
        try:
            link = member_path(member.linkname)
        except BadMember as exc:
            layer.problem(f"{display_path(path)!r}: refused hard link: {exc}")
            return None
    reader = None
    if kind == "file":

        def reader(limit: int, _m: tarfile.TarInfo = member) -> Iterator[bytes]:
            handle = archive.extractfile(_m)
            if handle is None:
                return iter(())
            return _bounded(handle, limit)

    size = member.size if kind == "file" else 0
    return mk(path, kind, size, link, reader)


def layer_stream_entries(raw: IO[bytes] | Any, layer: LayerReading) -> Iterator[Entry]:
    """Entries of a stored layer blob (tar, or gzip'ed tar), hashing it as it goes."""
    blob = _Hashing(raw)
    head = blob.peek(4)
    diff: _Hashing
    if head.startswith(_GZIP):
        diff = _Hashing(gzip.GzipFile(fileobj=blob, mode="rb"))
    elif head.startswith(_ZSTD):
        layer.problem("zstd-compressed layer: not supported, its files are not read")
        blob.drain()
        layer.blob_digest = blob.digest()
        return
    else:
        diff = _Hashing(blob)
    yield from tar_entries(diff, layer)  # type: ignore[arg-type]
    try:
        diff.drain()
        blob.drain()
        layer.diff_id = diff.digest()
        layer.blob_digest = blob.digest()
    except (OSError, EOFError, zlib_error()) as exc:
        layer.problem(f"layer could not be read to its end: {exc}")


# --- blobs: a random-access archive or a directory ---------------------------------------


class _Blobs:
    """Named files of an image archive (``manifest.json``, ``blobs/sha256/...``)."""

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        raise NotImplementedError

    def read(self, name: str, limit: int = MAX_META) -> bytes:
        with self.open(name) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise BadArchive(f"{name} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        pass


class _TarBlobs(_Blobs):
    """A tar file on disk, read with random access (headers once, members on demand)."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.archive = tarfile.open(  # noqa: SIM115 - closed by close()
            path, mode="r:", tarinfo=_SafeTarInfo, encoding="utf-8", errors="surrogateescape"
        )
        self.members: dict[str, tarfile.TarInfo] = {}
        count = 0
        while True:
            try:
                member = self.archive.next()
            except tarfile.TarError as exc:
                problems.append(f"archive broken after {count} members: {exc}")
                break
            if member is None:
                break
            count += 1
            if count > MAX_MEMBERS:
                problems.append(f"archive has more than {MAX_MEMBERS} members: the rest is ignored")
                break
            try:
                name = archive_name(member.name)
            except BadMember as exc:
                problems.append(f"refused archive member: {exc}")
                continue
            self.members.setdefault(name, member)

    def _member(self, name: str, hops: int = 0) -> tarfile.TarInfo:
        member = self.members.get(name)
        if member is None:
            raise BadArchive(f"the archive has no {name!r}")
        if (member.issym() or member.islnk()) and hops < 4:
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            return self._member(archive_name(target), hops + 1)
        if not member.isreg():
            raise BadArchive(f"{name!r} in the archive is not a regular file")
        return member

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        handle = self.archive.extractfile(self._member(name))
        if handle is None:
            raise BadArchive(f"{name!r} cannot be read")
        with handle:
            yield handle

    def exists(self, name: str) -> bool:
        return name in self.members

    def close(self) -> None:
        self.archive.close()


class _DirBlobs(_Blobs):
    """An unpacked archive or OCI layout directory, read through RootFS."""

    def __init__(self, path: str) -> None:
        self.fs = RootFS(path)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with self.fs.open_regular(name) as (fd, _st):
            dup = os.dup(fd)
            with os.fdopen(dup, "rb") as handle:
                yield handle

    def exists(self, name: str) -> bool:
        try:
            return self.fs.resolve(name).stat is not None
        except UnsafePath:
            return False


def _parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadArchive(f"{what} is not JSON: {exc}") from exc


def _blob_name(digest: object, what: str) -> str:
    """``blobs/sha256/<hex>`` for a validated digest; anything else is refused."""
    if not is_digest(digest):
        raise BadArchive(f"{what} names {str(digest)[:100]!r}, which is not a sha256 digest")
    assert isinstance(digest, str)
    return "blobs/sha256/" + digest[7:]


class ArchiveSource(ImageSource):
    """A ``docker save`` tar or an OCI layout, as a tar file or a directory."""

    def __init__(self, path: str, ref: str = "") -> None:
        super().__init__(path)
        self.path = path
        self.blobs: _Blobs = _DirBlobs(path) if os.path.isdir(path) else _TarBlobs(path, self.problems)
        self._names: dict[str, str] = {}
        """layer key -> archive member name."""
        try:
            if self.blobs.exists("manifest.json"):
                self.kind = "docker-archive"
                self._docker_manifest(ref)
            elif self.blobs.exists("index.json"):
                self.kind = "oci-layout"
                self._oci_index(ref)
            else:
                raise BadArchive(f"{path}: neither manifest.json nor index.json: not an image archive")
        except BaseException:
            self.blobs.close()
            raise

    def close(self) -> None:
        self.blobs.close()

    def _docker_manifest(self, ref: str) -> None:
        manifest = _parse_json(self.blobs.read("manifest.json"), "manifest.json")
        if not isinstance(manifest, list) or not manifest or not all(isinstance(m, dict) for m in manifest):
            raise BadArchive("manifest.json is not a list of image entries")
        chosen = manifest[0]
        if ref:
            matches = [m for m in manifest if ref in (m.get("RepoTags") or [])]
            if not matches:
                raise NotFound(f"no image tagged {ref!r} in {self.path}")
            chosen = matches[0]
        elif len(manifest) > 1:
            self.problem(
                f"the archive holds {len(manifest)} images: the first is read (pass a tag to choose)"
            )
        config_name = chosen.get("Config")
        if not isinstance(config_name, str) or not (
            _LEGACY_CONFIG.fullmatch(config_name) or _BLOB.fullmatch(config_name)
        ):
            raise BadArchive(f"manifest.json names config {str(config_name)[:100]!r}, not a digest path")
        expected = "sha256:" + (
            config_name[:64] if _LEGACY_CONFIG.fullmatch(config_name) else config_name[13:]
        )
        self._set_config(self.blobs.read(config_name), expected)
        tags = chosen.get("RepoTags") or []
        self.repo_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        names = chosen.get("Layers")
        if not isinstance(names, list) or len(names) > MAX_LAYERS:
            raise BadArchive("manifest.json has no usable Layers list")
        diff_ids = self.diff_ids()
        if len(names) != len(diff_ids):
            self.problem(f"manifest lists {len(names)} layers, the config {len(diff_ids)} diff_ids")
        for index, name in enumerate(names):
            if not isinstance(name, str) or not (_LEGACY_LAYER.fullmatch(name) or _BLOB.fullmatch(name)):
                raise BadArchive(f"manifest.json names layer {str(name)[:100]!r}, not a digest path")
            diff_id = diff_ids[index] if index < len(diff_ids) else ""
            blob = _BLOB.fullmatch(name)
            digest = "sha256:" + blob.group(1) if blob else diff_id
            self.layers.append(LayerInfo(index, diff_id, digest))
            key = f"{index}:{name}"
            self._names[key] = name
            self.layer_keys.append(key)

    def _oci_index(self, ref: str) -> None:
        index = _parse_json(self.blobs.read("index.json"), "index.json")
        manifest = self._pick_manifest(index, ref, depth=0)
        config = manifest.get("config")
        if not isinstance(config, dict):
            raise BadArchive("OCI manifest has no config descriptor")
        config_name = _blob_name(config.get("digest"), "OCI manifest config")
        self._set_config(self.blobs.read(config_name), config.get("digest"))
        descriptors = manifest.get("layers")
        if not isinstance(descriptors, list) or len(descriptors) > MAX_LAYERS:
            raise BadArchive("OCI manifest has no usable layers list")
        diff_ids = self.diff_ids()
        if len(descriptors) != len(diff_ids):
            self.problem(f"manifest lists {len(descriptors)} layers, the config {len(diff_ids)} diff_ids")
        for position, desc in enumerate(descriptors):
            if not isinstance(desc, dict):
                raise BadArchive(f"OCI layer descriptor {position} is not an object")
            name = _blob_name(desc.get("digest"), f"OCI layer descriptor {position}")
            size = desc.get("size")
            diff_id = diff_ids[position] if position < len(diff_ids) else ""
            media = desc.get("mediaType")
            self.layers.append(
                LayerInfo(position, diff_id, str(desc["digest"]), media if isinstance(media, str) else "",
                          size if isinstance(size, int) else None)
            )  # fmt: skip
            key = f"{position}:{name}"
            self._names[key] = name
            self.layer_keys.append(key)

    def _pick_manifest(self, index: Any, ref: str, depth: int) -> dict[str, Any]:
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise BadArchive("OCI index has no manifests list")
        manifests = [m for m in index["manifests"] if isinstance(m, dict)]
        if ref:
            named = [m for m in manifests if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                     in (ref, ref.rpartition(":")[2])]  # fmt: skip
            if not named:
                raise NotFound(f"no manifest named {ref!r} in {self.path}")
            manifests = named
        if not manifests:
            raise BadArchive("OCI index lists no manifest")
        if len(manifests) > 1:
            self.problem(f"the index lists {len(manifests)} manifests: the first is read")
        chosen = manifests[0]
        ref_name = (chosen.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if isinstance(ref_name, str):
            self.repo_tags = [ref_name]
        raw = self.blobs.read(_blob_name(chosen.get("digest"), "OCI index entry"))
        self.checks.append(
            DigestCheck("manifest", str(chosen.get("digest")), "sha256:" + hashlib.sha256(raw).hexdigest())
        )
        value = _parse_json(raw, "OCI manifest")
        if isinstance(value, dict) and isinstance(value.get("manifests"), list):
            if depth >= 2:
                raise BadArchive("OCI indexes nested too deep")
            return self._pick_manifest(value, "", depth + 1)
        if not isinstance(value, dict):
            raise BadArchive("OCI manifest is not an object")
        return value

    def walk(self) -> Iterator[LayerReading]:
        for key in self.layer_keys:
            yield LayerReading(key, self._layer_entries)

    def _layer_entries(self, layer: LayerReading) -> Iterator[Entry]:
        name = self._names[layer.key]
        index = self.layer_keys.index(layer.key)
        info = self.layers[index]
        try:
            with self.blobs.open(name) as handle:
                yield from layer_stream_entries(handle, layer)
        except (BadArchive, UnsafePath, OSError, tarfile.TarError) as exc:
            layer.problem(f"layer {name} unreadable: {exc}")
        _layer_checks(self.checks, index, info, layer)


def _layer_checks(checks: list[DigestCheck], index: int, info: LayerInfo, layer: LayerReading) -> None:
    if info.digest and info.digest != info.diff_id:
        checks.append(DigestCheck(f"layer {index} blob", info.digest, layer.blob_digest))
    if info.diff_id:
        checks.append(DigestCheck(f"layer {index} diff_id", info.diff_id, layer.diff_id))


# --- the engine's export stream (GET /images/{name}/get), read once, in stream mode ----


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the HTTP response)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            rest = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return rest
        while len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stream_layer(handle: IO[bytes], layer: LayerReading) -> Iterator[Entry]:
    return layer_stream_entries(handle, layer)


class StreamSource(ImageSource):
    """A ``docker save`` stream read once: layers in archive order, metadata at the end."""

    kind = "engine-export"

    def __init__(self, ref: str, chunks: Iterable[bytes]) -> None:
        super().__init__(ref)
        self._chunks = chunks
        self._meta: dict[str, bytes] = {}
        self._links: dict[str, str] = {}
        self._seen: dict[str, LayerReading] = {}

    def walk(self) -> Iterator[LayerReading]:
        outer = _open_tar_stream(_ChunkReader(self._chunks))  # type: ignore[arg-type]
        count = 0
        try:
            for member in outer:
                count += 1
                if count > MAX_MEMBERS:
                    self.problem("export stream has too many members: the rest is ignored")
                    break
                try:
                    name = archive_name(member.name)
                except BadMember as exc:
                    self.problem(f"refused archive member: {exc}")
                    continue
                if member.issym() and _LEGACY_LAYER.fullmatch(name):
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                    self._links[name] = target
                    continue
                if not member.isreg():
                    continue
                handle = outer.extractfile(member)
                if handle is None:
                    continue
                if _LEGACY_LAYER.fullmatch(name) or (_BLOB.fullmatch(name) and member.size > MAX_META):
                    layer = LayerReading(name, functools.partial(_stream_layer, handle))
                    self._seen[name] = layer
                    yield layer
                elif member.size <= MAX_META:
                    self._meta[name] = handle.read(MAX_META)
        except tarfile.TarError as exc:
            self.problem(f"export stream broken after {count} members: {exc}")
        finally:
            outer.close()
        self._finish()

    def _finish(self) -> None:
        raw = self._meta.get("manifest.json")
        if raw is None:
            raise BadArchive(f"{self.ref}: the export stream has no manifest.json")
        manifest = _parse_json(raw, "manifest.json")
        if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict):
            raise BadArchive("manifest.json is not a list of image entries")
        chosen = manifest[0]
        config_name = chosen.get("Config")
        if not isinstance(config_name, str) or not (
            _LEGACY_CONFIG.fullmatch(config_name) or _BLOB.fullmatch(config_name)
        ):
            raise BadArchive(f"manifest.json names config {str(config_name)[:100]!r}, not a digest path")
        if config_name not in self._meta:
            raise BadArchive(f"the export stream lacks {config_name}")
        expected = "sha256:" + (
            config_name[:64] if _LEGACY_CONFIG.fullmatch(config_name) else config_name[13:]
        )
        self._set_config(self._meta[config_name], expected)
        tags = chosen.get("RepoTags") or []
        self.repo_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        names = chosen.get("Layers")
        if not isinstance(names, list):
            raise BadArchive("manifest.json has no Layers list")
        diff_ids = self.diff_ids()
        for index, name in enumerate(names[:MAX_LAYERS]):
            if not isinstance(name, str) or not (_LEGACY_LAYER.fullmatch(name) or _BLOB.fullmatch(name)):
                raise BadArchive(f"manifest.json names layer {str(name)[:100]!r}, not a digest path")
            real = self._links.get(name, name)
            diff_id = diff_ids[index] if index < len(diff_ids) else ""
            blob = _BLOB.fullmatch(name)
            info = LayerInfo(index, diff_id, "sha256:" + blob.group(1) if blob else diff_id)
            self.layers.append(info)
            self.layer_keys.append(real)
            layer = self._seen.get(real)
            if layer is None:
                self.problem(f"layer {name} is missing from the export stream")
            else:
                _layer_checks(self.checks, index, info, layer)


# --- the layer dirs of a local image on disk ---------------------------------------------


class DiskSource(ImageSource):
    """A local image read from ``image/overlay2`` metadata and ``overlay2/<cache-id>/diff``."""

    kind = "disk"

    def __init__(self, disk: DockerDisk, image: DiskImage, ref: str) -> None:
        super().__init__(ref)
        self.disk = disk
        self.image = image
        raw = disk.fs.read_bytes(image.config_path, MAX_META)
        self._set_config(raw, image.id)
        self.repo_tags = list(image.repo_tags)
        self.repo_digests = list(image.repo_digests)
        diff_ids = self.diff_ids()
        dirs = disk.layer_dirs(diff_ids)
        self._dirs: dict[str, str | NotAvailable] = {}
        for index, (diff_id, chain, where) in enumerate(
            zip(diff_ids, chain_ids(diff_ids), dirs, strict=True)
        ):
            layerdb = disk.path("image", "overlay2", "layerdb", "sha256", chain[7:])
            recorded = disk.read_small(layerdb + "/diff")
            self.checks.append(
                DigestCheck(f"layer {index} layerdb diff", diff_id, recorded or NotAvailable("unreadable"))
            )
            size_text = disk.read_small(layerdb + "/size")
            size = int(size_text) if size_text and size_text.isdigit() else None
            self.layers.append(LayerInfo(index, diff_id, diff_id, "", size))
            key = f"{index}:{diff_id}"
            self.layer_keys.append(key)
            self._dirs[key] = where

    def walk(self) -> Iterator[LayerReading]:
        for key in self.layer_keys:
            yield LayerReading(key, self._entries)

    def identity(self, key: str) -> str | None:
        """The layer's diff dir on this disk (the engine keeps one dir per chain ID: the same
        dir is the same layer, whichever image reaches it)."""
        where = self._dirs.get(key)
        return f"disk:{self.disk.fs.root!r}:{where}" if isinstance(where, str) else None

    def _entries(self, layer: LayerReading) -> Iterator[Entry]:
        where = self._dirs[layer.key]
        if isinstance(where, NotAvailable):
            layer.problem(where.reason)
            return
        try:
            resolved = self.disk.fs.resolve(where, follow_final=False)
            if resolved.stat is None or not stat.S_ISDIR(resolved.stat.st_mode):
                layer.problem(f"{where} is missing or not a directory")
                return
            top = os.fsdecode(self.disk.fs.root.rstrip(b"/") + resolved.path)
            yield from dir_entries(top, layer)
        except (UnsafePath, OSError) as exc:
            layer.problem(f"{where}: {exc}")


def dir_entries(top: str, layer: LayerReading) -> Iterator[Entry]:
    """The entries of an overlay2 ``diff`` dir, as a layer tar would hold them.

    0/0 char devices become whiteouts, ``trusted.overlay.opaque=y`` dirs an opaque
    marker (after the dir itself), and a second name of an inode a hard link, as the
    engine's tar writer does. Only metadata is read here (lstat, link targets, the opaque
    xattr); a file is opened only when its entry's content is asked for.
    """
    fs = RootFS(top)
    inodes: dict[tuple[int, int], bytes] = {}
    count = 0
    for path, st, dir_fd, name, sub in _tree(top):
        count += 1
        if count > MAX_MEMBERS:
            layer.problem(f"more than {MAX_MEMBERS} entries: the rest is not read")
            return

        def mk(
            p: bytes,
            k: str,
            size: int = 0,
            link: bytes = b"",
            reader: Reader | None = None,
            _s: os.stat_result = st,
        ) -> Entry:
            return Entry(p, k, _s.st_mode & 0o7777, _s.st_uid, _s.st_gid, size, _s.st_mtime, link, reader)

        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            yield mk(path, "whiteout")
        elif stat.S_ISDIR(mode):
            yield mk(path, "dir")
            if sub is not None and _fd_xattr(sub, "trusted.overlay.opaque") == b"y":
                yield mk(path, "opaque")
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                yield mk(path, "hardlink", link=inodes[key])
                continue
            if st.st_nlink > 1:
                inodes[key] = path

            def reader(limit: int, _p: bytes = path) -> Iterator[bytes]:
                return _file_chunks(fs, _p, limit)

            yield mk(path, "file", st.st_size, reader=reader)
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError as exc:
                layer.problem(f"{display_path(path)!r}: {exc}")
                target = b""
            yield mk(path, "symlink", link=target)
        elif stat.S_ISCHR(mode):
            yield mk(path, "char")
        elif stat.S_ISBLK(mode):
            yield mk(path, "block")
        elif stat.S_ISFIFO(mode):
            yield mk(path, "fifo")
        else:
            layer.problem(f"{display_path(path)!r}: socket or unknown type: skipped")


_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_CHUNK = 1 << 20
"""Bytes of one read of a file in a layer dir."""


def _open_dir(name: bytes, dir_fd: int | None) -> int:
    """Open a directory to list it, never through a link, leaving its atime alone if allowed."""
    if _O_NOATIME:
        try:
            return os.open(name, _LIST_FLAGS | _O_NOATIME, dir_fd=dir_fd)
        except PermissionError:
            pass  # O_NOATIME needs ownership or CAP_FOWNER
    return os.open(name, _LIST_FLAGS, dir_fd=dir_fd)


def _tree(top: str) -> Iterator[tuple[bytes, os.stat_result, int, bytes, int | None]]:
    """Every entry below the directory ``top`` (not ``top`` itself), in
    :meth:`RootFS.walk`'s order (a directory's names sorted, then each of its
    subdirectories the same way), as ``(path, lstat, dir_fd, name, own_fd)``.

    ``dir_fd`` is the open directory holding ``name``, so a link is read where it was
    lstat'ed instead of being resolved again from ``top``; ``own_fd`` is the entry's own fd
    when it is a directory that could be opened (no link followed, same inode as its
    lstat), else None. Both are valid only until the next item. A directory that cannot
    be listed or opened is passed over, as RootFS.walk does.
    """
    todo: list[tuple[int, bytes]] = [(_open_dir(os.fsencode(top), None), b"")]
    subdirs: list[tuple[int, bytes]] = []
    try:
        while todo:
            dir_fd, prefix = todo.pop()
            try:
                try:
                    names = sorted(os.fsencode(n) for n in os.listdir(dir_fd))
                except OSError:
                    continue
                for name in names:
                    try:
                        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except OSError:
                        continue
                    path = prefix + b"/" + name
                    own = None
                    if stat.S_ISDIR(st.st_mode):
                        own = _open_subdir(name, dir_fd, st)
                        if own is not None:
                            subdirs.append((own, path))
                    yield path, st, dir_fd, name, own
                todo.extend(reversed(subdirs))
                subdirs.clear()
            finally:
                os.close(dir_fd)
    finally:
        for fd, _ in todo + subdirs:
            os.close(fd)


def _open_subdir(name: bytes, dir_fd: int, st: os.stat_result) -> int | None:
    try:
        fd = _open_dir(name, dir_fd)
    except OSError:
        return None
    try:
        now = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)  # swapped since the lstat: not the directory that was listed
        return None
    return fd


def _file_chunks(fs: RootFS, path: bytes, limit: int) -> Iterator[bytes]:
    """At most ``limit`` bytes of the file, to its end however big fstat said it was. The
    first read asks for fstat's size and a byte more (os.read allocates what it is asked
    for: 1 MiB for each small file of a layer cost more than reading it)."""
    with fs.open_regular(path, follow=False) as (fd, st):
        remaining = limit
        want = min(st.st_size + 1, _CHUNK)
        while remaining > 0:
            chunk = os.read(fd, min(remaining, want))
            if not chunk:
                return
            remaining -= len(chunk)
            want = _CHUNK
            yield chunk


def _fd_xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError:
        return None


# --- which source a reference names -------------------------------------------------------


def find_disk_image(disk: DockerDisk, ref: str) -> DiskImage:
    """A local image by ``sha256:<id>``, id prefix, ``repo:tag``, ``repo`` (:latest) or digest."""
    images = disk.inventory().images
    want = ref.removeprefix("sha256:")
    exact = [i for i in images if ref in i.repo_tags or ref in i.repo_digests or i.id == "sha256:" + want]
    if not exact and ":" not in ref.rpartition("/")[2] and "@" not in ref:
        exact = [i for i in images if f"{ref}:latest" in i.repo_tags]
    if not exact and re.fullmatch(r"[0-9a-f]{4,64}", want):
        exact = [i for i in images if i.id[7:].startswith(want)]
    if not exact:
        raise NotFound(f"no local image {ref!r} on disk")
    if len(exact) > 1:
        raise NotFound(f"{ref!r} names {len(exact)} images: give more of the id")
    return exact[0]


def open_path(path: str | Path, ref: str = "") -> ArchiveSource:
    """A ``docker save`` tar or OCI layout (tar or directory) on this machine."""
    return ArchiveSource(str(path), ref)


def open_image(ctx: Any, ref: str, from_engine: bool = False) -> ImageSource:
    """The image ``ref`` names: an archive path, else a local image (disk first).

    ``ctx`` is a :class:`forensics.context.HostContext`. A local image is read from its
    layer dirs on disk when the host root holds it (the forensic default: nothing asked
    of the daemon); from the engine's export stream when ``from_engine`` is set or the
    disk does not have it.
    """
    if (os.sep in ref or ref.endswith(".tar")) and os.path.exists(ref):
        tag = ""
        return open_path(ref, tag)
    if not from_engine:
        disk = ctx.disk()
        if disk.exists():
            try:
                image = find_disk_image(disk, ref)
            except NotFound:
                if ctx.no_engine:
                    raise
            else:
                return DiskSource(disk, image, ref)
        elif ctx.no_engine:
            disk.require()
    engine = ctx.require_engine()
    try:
        engine.api.inspect_image(ref)
    except Exception as exc:
        raise NotFound(f"no image {ref!r}: {exc}") from exc
    return StreamSource(ref, engine.api.get_image(ref, chunk_size=1 << 20))


__all__ = [
    "TYPES", "ArchiveSource", "BadArchive", "BadMember", "DigestCheck", "DiskSource", "Entry", "ImageSource",
    "LayerInfo", "LayerReading", "StreamSource", "dir_entries", "find_disk_image", "is_hex64", "member_path",
    "open_image", "open_path", "tar_entries",
]  # fmt: skip
