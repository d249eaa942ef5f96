"""What an image is made of: one read of every layer, then history, per-layer changes,
dive's efficiency figures, the final file system and the secret search, all from it.

:func:`scan_image` walks the source once (trivy's one-walk rule): each entry's metadata
is kept, each regular file is hashed and its first bytes are offered to the secret rules
while its bytes stream past. Everything else works on the resulting :class:`ImageScan`.
With ``ScanOptions(content=False)`` the walk keeps metadata only and asks for no file's
bytes: a disk source then opens no file at all, and a stream source skips past them
(still hashing the layer, so its digest checks stand).

Whiteouts follow the OCI layer spec: a layer's whiteouts apply to the layers below it
only; ``.wh.<name>`` deletes ``<name>`` and everything under it, ``.wh..wh..opq`` hides
every lower child of its directory.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from forensics.bulk import collector_paused
from forensics.findings import Finding, Severity
from forensics.images.source import DigestCheck, ImageSource
from forensics.records import NotAvailable, display_path

if TYPE_CHECKING:
    # Imported where used: compiling its rules is wasted on a metadata-only scan.
    from forensics.rules import secrets

MAX_HASH = 256 << 20
"""Largest file hashed (larger ones get NotAvailable)."""
SEARCH_WINDOW = 1 << 20
"""Bytes of each file offered to the secret rules."""


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """One entry of one layer."""

    path: bytes
    type: str
    """See :data:`forensics.images.source.TYPES`."""
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    link: bytes
    sha256: str | NotAvailable | None
    """Content hash for regular files (and hard links, the target's); None otherwise.
    :data:`NOT_READ` for every regular file and hard link of a metadata-only scan."""
    secrets: tuple[secrets.SecretHit, ...] = ()
    parsed: tuple[tuple[str, Any], ...] = ()
    """(parser name, result) from each :class:`ContentParser` that wanted this file."""


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    index: int
    diff_id: str
    """From the config."""
    digest: str
    """Blob digest from the manifest (the diff_id for disk and legacy sources)."""
    computed_diff_id: str | NotAvailable
    stored_size: int | None
    size: int
    """Sum of the content sizes of the layer's entries (dive's layer size)."""
    files: tuple[FileRecord, ...]
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ImageScan:
    ref: str
    kind: str
    """Where it was read from: disk, engine-export, docker-archive, oci-layout."""
    image_id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    config: dict[str, Any]
    layers: tuple[LayerRecord, ...]
    checks: tuple[DigestCheck, ...]
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ContentParser:
    """Something that wants the bytes of some files during the one walk (trivy's analyzers).

    ``wants(path)`` gives how many leading bytes it needs (0: not this file); ``parse(path,
    data)`` turns them into a small record kept on the file's :class:`FileRecord`.
    """

    name: str
    wants: Callable[[bytes], int]
    parse: Callable[[bytes, bytes], Any]


_DPKG_LIST = re.compile(rb"/var/lib/dpkg/info/[^/]+\.list")
APK_INSTALLED = b"/lib/apk/db/installed"
MANIFEST_LIMIT = 16 << 20


def _wants_manifest(path: bytes) -> int:
    return MANIFEST_LIMIT if path == APK_INSTALLED or _DPKG_LIST.fullmatch(path) else 0


def _parse_manifest(path: bytes, data: bytes) -> frozenset[bytes]:
    """The files a distribution package manager installed: a dpkg ``.list`` (one absolute
    path a line) or apk's database (``F:`` directory, ``R:`` file in it)."""
    if path != APK_INSTALLED:
        return frozenset(os.path.normpath(line) for line in data.split(b"\n") if line.startswith(b"/"))
    out = set()
    folder = b""
    for line in data.split(b"\n"):
        if line.startswith(b"F:"):
            folder = line[2:]
        elif line.startswith(b"R:"):
            out.add(os.path.normpath(b"/" + folder + b"/" + line[2:]))
    return frozenset(out)


PACKAGE_FILES = ContentParser("secrets.package-files", _wants_manifest, _parse_manifest)
"""Read during the walk whenever the secret search runs: what the distribution's packages
installed is the distribution's (its example passwords, test keys), not the suspect's."""


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    hash_limit: int = MAX_HASH
    search: bool = True
    """Offer each file's first bytes to the secret rules (only with ``content``)."""
    parsers: tuple[ContentParser, ...] = ()
    """Only with ``content``."""
    content: bool = True
    """Read files' bytes (hash, secret rules, parsers). False: metadata only, for what needs
    no more (``image layers``: paths, sizes, dive's figures); no file is opened for it."""


NOT_READ = NotAvailable("not read: metadata only")
"""The hash of every regular file (and hard link) of a ``content=False`` scan."""


_LayerRead = tuple[list[FileRecord], list[str], str | NotAvailable]
"""One layer's records, its problems and the diff_id computed while reading it."""


class LayerCache:
    """Layers already read, kept for the scans still to come that share them.

    A host's images share their lower layers (every image built FROM one base), and a
    triage reads each shared layer dir once instead of once per image. ``uses`` names each
    layer identity (:meth:`ImageSource.identity`) once per scan that will ask for it; a
    layer is kept only while a later scan still wants it, so memory holds the shared
    layers, not every layer of the host.
    """

    def __init__(self, uses: Iterable[str]) -> None:
        self._left = collections.Counter(uses)
        self._kept: dict[tuple[str, ScanOptions], _LayerRead] = {}
        self.read = 0
        self.reused = 0

    def take(self, identity: str, options: ScanOptions) -> _LayerRead | None:
        """The layer as read before (None: read it, then :meth:`keep` it); counts one use."""
        self._left[identity] -= 1
        key = (identity, options)
        known = self._kept.pop(key, None) if self._left[identity] <= 0 else self._kept.get(key)
        if known is None:
            self.read += 1
        else:
            self.reused += 1
        return known

    def keep(self, identity: str, options: ScanOptions, value: _LayerRead) -> None:
        if self._left[identity] > 0:
            self._kept[(identity, options)] = value


def scan_image(
    source: ImageSource, options: ScanOptions = ScanOptions(), cache: LayerCache | None = None
) -> ImageScan:
    """Read every layer of ``source`` once (a layer ``cache`` holds is not read again);
    close the source after."""
    by_key: dict[str, _LayerRead] = {}
    try:
        with collector_paused():  # a record per entry of every layer, all kept
            for layer in source.walk():
                identity = source.identity(layer.key) if cache is not None else None
                if cache is not None and identity is not None:
                    known = cache.take(identity, options)
                    if known is not None:
                        by_key[layer.key] = known
                        continue
                files: list[FileRecord] = []
                hashes: dict[bytes, str | NotAvailable | None] = {}
                for entry in layer.entries():
                    digest: str | NotAvailable | None = None
                    hits: tuple[secrets.SecretHit, ...] = ()
                    parsed: tuple[tuple[str, Any], ...] = ()
                    if not options.content:
                        if entry.type in ("file", "hardlink"):
                            digest = NOT_READ
                    elif entry.type == "file":
                        digest, hits, parsed = _content(entry, options, layer.problems)
                        hashes[entry.path] = digest
                    elif entry.type == "hardlink":
                        digest = hashes.get(entry.link, NotAvailable("hard link target not in this layer"))
                    files.append(FileRecord(entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.size,
                                            entry.mtime, entry.link, digest, hits, parsed))  # fmt: skip
                by_key[layer.key] = (files, layer.problems, layer.diff_id)
                if cache is not None and identity is not None:
                    cache.keep(identity, options, by_key[layer.key])
    finally:
        source.close()
    layers = []
    for index, key in enumerate(source.layer_keys):
        info = source.layers[index]
        files, problems, computed = by_key.get(key, ([], ["layer was not read"], NotAvailable("not read")))
        size = sum(f.size for f in files if f.type == "file")
        layers.append(LayerRecord(index, info.diff_id, info.digest, computed, info.size, size, tuple(files),
                                  tuple(problems)))  # fmt: skip
    return ImageScan(source.ref, source.kind, source.config_digest, tuple(source.repo_tags),
                     tuple(source.repo_digests), source.config, tuple(layers), tuple(source.checks),
                     tuple(source.problems))  # fmt: skip


def _content(
    entry: Any, options: ScanOptions, problems: list[str]
) -> tuple[str | NotAvailable, tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    from forensics.rules import secrets

    if entry.size > options.hash_limit:
        return NotAvailable(f"{entry.size} bytes, over the {options.hash_limit} hash limit"), (), ()
    parsers = options.parsers + ((PACKAGE_FILES,) if options.search else ())
    wanted = [(p, p.wants(entry.path)) for p in parsers]
    wanted = [(p, n) for p, n in wanted if n > 0]
    keep = max((n for _, n in wanted), default=0)
    sha = hashlib.sha256()
    head = b""
    kept: list[bytes] = []
    kept_size = 0
    try:
        for chunk in entry.chunks(options.hash_limit):
            sha.update(chunk)
            if options.search and len(head) < SEARCH_WINDOW:
                head += chunk[: SEARCH_WINDOW - len(head)]
            if kept_size < keep:
                kept.append(chunk[: keep - kept_size])
                kept_size += len(kept[-1])
    except Exception as exc:  # one unreadable file is a problem, not a lost image
        problems.append(f"{display_path(entry.path)!r}: {exc}")
        return NotAvailable(f"unreadable: {exc}"), (), ()
    hits = tuple(secrets.find_secrets(head)) if head else ()
    parsed = []
    data = b"".join(kept)
    for parser, limit in wanted:
        try:
            parsed.append((parser.name, parser.parse(entry.path, data[:limit])))
        except Exception as exc:  # a hostile file breaks its parser, not the walk
            problems.append(f"{display_path(entry.path)!r}: {parser.name} parser: {exc}")
    return sha.hexdigest(), hits, tuple(parsed)


# --- history ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    created: str
    created_by: str
    """Untruncated."""
    comment: str
    author: str
    empty_layer: bool
    layer_index: int | None
    layer_digest: str | None
    layer_size: int | None


def _history_raw(config: dict[str, Any]) -> list[dict[str, Any]]:
    history = config.get("history")
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def history(scan: ImageScan) -> list[HistoryEntry]:
    """Every history entry, oldest first, each non-empty one with its layer."""
    out = []
    position = 0
    for item in _history_raw(scan.config):
        empty = item.get("empty_layer") is True
        layer = None
        if not empty and position < len(scan.layers):
            layer = scan.layers[position]
        if not empty:
            position += 1
        out.append(HistoryEntry(str(item.get("created", "")), str(item.get("created_by", "")),
                                str(item.get("comment", "")), str(item.get("author", "")), empty,
                                layer.index if layer else None, layer.digest if layer else None,
                                layer.size if layer else None))  # fmt: skip
    return out


def layer_commands(scan: ImageScan) -> list[str]:
    commands = ["" for _ in scan.layers]
    for entry in history(scan):
        if entry.layer_index is not None:
            commands[entry.layer_index] = entry.created_by
    return commands


# --- layers applied one over another --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerChanges:
    index: int
    digest: str
    diff_id: str
    size: int
    created_by: str
    added: tuple[bytes, ...]
    changed: tuple[bytes, ...]
    deleted: tuple[bytes, ...]
    """Paths a whiteout or an opaque dir removed from the lower layers (each one listed)."""
    whiteouts: tuple[bytes, ...]
    opaque_dirs: tuple[bytes, ...]


@dataclasses.dataclass(frozen=True)
class Placed:
    """A path of a stacked file system, and the layer that supplied it."""

    layer: int
    record: FileRecord


class _Dir(dict[bytes, "_Dir"]):
    """A node of a tree of path components: name -> the node below it; ``entry`` when the
    path it stands for is an entry itself, not only a directory on the way to one."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        super().__init__()
        self.entry = False

    def find(self, path: bytes) -> _Dir | None:
        """The node of ``path`` (absolute) below this root node, None when absent."""
        node = self
        for name in _components(path):
            below = node.get(name)
            if below is None:
                return None
            node = below
        return node

    def make(self, path: bytes) -> _Dir:
        """The node of ``path``, made with every node on the way to it."""
        node = self
        for name in _components(path):
            below = node.get(name)
            if below is None:
                below = node[name] = _Dir()
            node = below
        return node

    def entries(self, top: bytes) -> Iterator[bytes]:
        """The paths of the entries under this node, which is ``top``'s. A path is joined
        only for an entry: a chain of directories that are no entries costs its length,
        not its length times its depth."""
        parts = [top.rstrip(b"/")]
        todo = [iter(self.items())]
        while todo:
            for name, child in todo[-1]:
                if child.entry:
                    yield b"/".join([*parts, name])
                if child:
                    parts.append(name)
                    todo.append(iter(child.items()))
                    break
            else:
                todo.pop()
                parts.pop()


def _components(path: bytes) -> list[bytes]:
    return [name for name in path.split(b"/") if name]


class Stack:
    """The file system of the layers stacked so far: path -> the entry and the layer that
    supplied it, beside a tree of its path components, so that what lies under a path
    costs its own size to find, not the whole tree's (a layer's thousands of whiteouts
    over a big lower tree once cost their product), and a path costs its length to add,
    however deep (a tree of strings, one per ancestor, cost its depth times its length)."""

    def __init__(self) -> None:
        self.files: dict[bytes, Placed] = {}
        self._tree = _Dir()
        """Every path placed, and the directories on the way to it, entries or not."""

    def place(self, path: bytes, placed: Placed) -> None:
        self._tree.make(path).entry = True
        self.files[path] = placed

    def drop(self, path: bytes) -> bool:
        """Remove the entry ``path`` (not what is under it); whether there was one."""
        if self.files.pop(path, None) is None:
            return False
        node = self._tree.find(path)
        if node is not None:
            node.entry = False
        return True

    def under(self, top: bytes) -> Iterator[bytes]:
        """The paths of the entries below ``top`` (``top`` itself not)."""
        node = self._tree.find(top)
        return iter(()) if node is None else node.entries(top)

    def clear_under(self, top: bytes) -> list[bytes]:
        """Remove every entry below ``top``; the paths removed. The tree below ``top``
        goes with them, so a later clearing of the same directory costs nothing."""
        node = self._tree.find(top)
        if node is None:
            return []
        gone = list(node.entries(top))
        for path in gone:
            del self.files[path]
        node.clear()
        return gone


def _apply(state: Stack, layer: LayerRecord) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Stack ``layer`` on ``state`` (in place); return (added, changed, deleted)."""
    lower = dict(state.files)
    doomed: set[bytes] = set()
    for mark in layer.files:
        if mark.type == "whiteout":
            if state.drop(mark.path):
                doomed.add(mark.path)
            doomed.update(state.clear_under(mark.path))
        elif mark.type == "opaque":
            doomed.update(state.clear_under(mark.path))
    added: list[bytes] = []
    changed: list[bytes] = []
    for record in layer.files:
        if record.type in ("whiteout", "opaque"):
            continue
        (changed if record.path in lower else added).append(record.path)
        state.place(record.path, Placed(layer.index, record))
        # A non-directory over a directory hides what was below it.
        below = lower.get(record.path)
        if record.type != "dir" and below is not None and below.record.type == "dir":
            state.clear_under(record.path)
    present = {r.path for r in layer.files if r.type not in ("whiteout", "opaque")}
    return added, changed, [p for p in sorted(doomed) if p not in present]


def layer_changes(scan: ImageScan) -> list[LayerChanges]:
    state = Stack()
    commands = layer_commands(scan)
    out = []
    for layer in scan.layers:
        added, changed, deleted = _apply(state, layer)
        out.append(LayerChanges(layer.index, layer.digest, layer.diff_id, layer.size, commands[layer.index],
                                tuple(sorted(added)), tuple(sorted(changed)), tuple(deleted),
                                tuple(f.path for f in layer.files if f.type == "whiteout"),
                                tuple(f.path for f in layer.files if f.type == "opaque")))  # fmt: skip
    return out


def final_files(scan: ImageScan) -> dict[bytes, Placed]:
    """The image's file system as a container would see it: path -> supplying layer."""
    state = Stack()
    for layer in scan.layers:
        _apply(state, layer)
    return dict(sorted(state.files.items()))


# --- dive's figures (filetree/efficiency.go) ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Repeated:
    path: str
    count: int
    """Layers holding the path."""
    size: int
    """Bytes over all of them (the first copy included)."""


@dataclasses.dataclass(frozen=True)
class Efficiency:
    size: int
    """Sum of the layers' sizes."""
    user_size: int
    """Sum of the sizes of all layers but the first."""
    wasted: int
    efficiency: float
    user_wasted_percent: float
    repeated: tuple[Repeated, ...]
    """Largest first."""


def _leaves(layer: LayerRecord) -> list[tuple[bytes, FileRecord]]:
    """Entries of the layer's own tree that have no child in it (dive visits only leaves).

    A whiteout is a node of its own (named ``.wh.x``), so it never parents anything.
    """
    tree = _Dir()
    nodes = {r.path: tree.make(r.path) for r in layer.files if r.type not in ("whiteout", "opaque")}
    return [
        (r.path, r) for r in layer.files if r.type != "opaque" and (r.type == "whiteout" or not nodes[r.path])
    ]


def efficiency(scan: ImageScan) -> Efficiency:
    cumulative: dict[bytes, int] = {}
    minimum: dict[bytes, int] = {}
    counts: dict[bytes, int] = {}
    state = Stack()
    for layer in scan.layers:
        removed: dict[bytes, int] = {}
        for path, record in _leaves(layer):
            size = record.size
            if record.type == "whiteout":
                below = state.files.get(path)
                size = 0
                if below is not None and below.record.type == "dir":
                    if path not in removed:  # the same whiteout twice in one layer: once summed
                        removed[path] = below.record.size + sum(
                            state.files[q].record.size for q in state.under(path)
                        )
                    size = removed[path]
            cumulative[path] = cumulative.get(path, 0) + size
            minimum[path] = size if path not in minimum else min(minimum[path], size)
            counts[path] = counts.get(path, 0) + 1
        _apply(state, layer)
    total = sum(cumulative.values())
    score = 1.0 if total == 0 else sum(minimum.values()) / total
    repeated = sorted(
        (Repeated(display_path(p), counts[p], cumulative[p]) for p in counts if counts[p] > 1),
        key=lambda r: (-r.size, r.path),
    )
    wasted = sum(r.size for r in repeated)
    size = sum(layer.size for layer in scan.layers)
    user = sum(layer.size for layer in scan.layers[1:])
    return Efficiency(size, user, wasted, score, (wasted / user * 100) if user else 0.0, tuple(repeated))


# --- findings about the reading itself --------------------------------------------------


def image_name(scan: ImageScan) -> str:
    """The image as a title names it: its first tag, else its short id."""
    if scan.repo_tags:
        return scan.repo_tags[0]
    return scan.image_id.removeprefix("sha256:")[:12] or scan.ref


def subject(scan: ImageScan) -> str:
    return f"image:{scan.image_id.removeprefix('sha256:')}" if scan.image_id else f"image:{scan.ref}"


def integrity_findings(scan: ImageScan, source: str, evidence: Iterable[str] = ()) -> list[Finding]:
    out = []
    for check in scan.checks:
        if check.ok:
            continue
        if isinstance(check.actual, NotAvailable):
            # Could not be computed (unreadable layer): a problem, recorded elsewhere.
            continue
        out.append(Finding("image.digest-mismatch", Severity.HIGH,
                           f"{check.what} digest does not match in {scan.ref}", subject(scan), source,
                           tuple(evidence), f"expected {check.expected}, computed {check.actual}"))  # fmt: skip
    return out


# --- search: names, contents, ENV and history, and what later layers hid ------------------


@dataclasses.dataclass(frozen=True)
class SearchHit:
    kind: str
    """``name``, ``content``, ``env``, ``history``, or ``hidden`` (deleted by a later layer)."""
    path: str
    """The file (or ``ENV <key>`` / ``history <n>``)."""
    layer: int | None
    what: str
    severity: Severity
    excerpt: str = ""
    present_in_final: bool = True


def package_files(final: dict[bytes, Placed]) -> dict[bytes, int]:
    """Files the image's dpkg or apk database lists -> the layer that wrote that list."""
    out: dict[bytes, int] = {}
    for placed in final.values():
        for name, result in placed.record.parsed:
            if name == PACKAGE_FILES.name and isinstance(result, frozenset):
                for path in result:
                    out[path] = max(out.get(path, -1), placed.layer)
    return out


PACKAGED = "in a file a distribution package installed"


def search(scan: ImageScan) -> list[SearchHit]:
    """Suspicious names and secrets in every layer (hidden ones included), ENV and history.

    Content hits in files that the image's dpkg or apk lists, in the layer that wrote the
    list or an earlier one, are the distribution's: INFO, summarised in one finding. A
    later layer that changes such a file is the image author's, and its hits count.
    """
    from forensics.rules import secrets

    hits: list[SearchHit] = []
    final = final_files(scan)
    packaged = package_files(final)
    for layer in scan.layers:
        for record in layer.files:
            if record.type in ("whiteout", "opaque", "dir"):
                continue
            placed = final.get(record.path)
            visible = placed is not None and placed.layer == layer.index
            named = secrets.suspicious_name(record.path)
            if named is not None:
                what, severity = named
                hits.append(SearchHit("name", display_path(record.path), layer.index, what,
                                      severity, present_in_final=visible))  # fmt: skip
            for secret in record.secrets:
                if packaged.get(record.path, -1) >= layer.index:
                    hits.append(SearchHit("content", display_path(record.path), layer.index,
                                          f"{secret.title} {PACKAGED}", Severity.INFO, secret.excerpt, visible))  # fmt: skip
                    continue
                hits.append(SearchHit("content", display_path(record.path), layer.index, secret.title,
                                      secret.severity, secret.excerpt, visible))  # fmt: skip
            if placed is None and record.type == "file":
                secret_like = bool(record.secrets) or named is not None
                hits.append(SearchHit("hidden", display_path(record.path), layer.index,
                                      "deleted by a later layer, still in this layer",
                                      Severity.HIGH if secret_like else Severity.INFO,
                                      present_in_final=False))  # fmt: skip
    cfg = scan.config.get("config") if isinstance(scan.config.get("config"), dict) else {}
    assert isinstance(cfg, dict)
    for item in cfg.get("Env") or []:
        if not isinstance(item, str):
            continue
        key, _, value = item.partition("=")
        found = secrets.find_secrets(item.encode("utf-8", "surrogateescape"))
        for secret in found:
            hits.append(SearchHit("env", f"ENV {key}", None, secret.title, secret.severity, secret.excerpt))
        if not found and value and secrets.secret_env_key(key):
            hits.append(SearchHit("env", f"ENV {key}", None, "secret-looking ENV key", Severity.MEDIUM,
                                  secrets.mask(value.encode("utf-8", "surrogateescape"))))  # fmt: skip
    for number, entry in enumerate(history(scan)):
        for secret in secrets.find_secrets(entry.created_by.encode("utf-8", "surrogateescape")):
            hits.append(SearchHit("history", f"history {number}", entry.layer_index, secret.title,
                                  secret.severity, secret.excerpt))  # fmt: skip
    return hits


def search_findings(
    scan: ImageScan, hits: list[SearchHit], source: str, evidence: tuple[str, ...]
) -> list[Finding]:
    """One finding per secret or secret-like hidden file; one summary for other hidden files
    and one for secret-like strings in the distribution's package files."""
    out = []
    plain_hidden = 0
    packaged = 0
    name = image_name(scan)
    for hit in hits:
        if hit.kind == "hidden" and hit.severity is Severity.INFO:
            plain_hidden += 1
            continue
        if hit.kind == "content" and hit.severity is Severity.INFO:
            packaged += 1
            continue
        if hit.severity in (Severity.INFO, Severity.LOW) and hit.kind == "name":
            continue
        if hit.kind == "hidden":
            title = f"secret-like file {hit.path} deleted by a later layer is still in layer {hit.layer} of image {name}"
        elif hit.kind == "name":
            title = f"{hit.what} in image {name}: {hit.path}"
        else:
            title = f"{hit.what} in {hit.kind} of image {name}: {hit.path}"
        severity = hit.severity
        if not hit.present_in_final and hit.kind in ("content", "name"):
            severity = Severity.HIGH  # hidden in history: the responder would not see it in a container
            title += f" (hidden in history, layer {hit.layer})"
        out.append(Finding(f"image.secret-{hit.kind}", severity, title, subject(scan), source, evidence,
                           hit.excerpt))  # fmt: skip
    if packaged:
        out.append(Finding("image.secret-packaged", Severity.INFO,
                           f"{packaged} secret-like string{'s' if packaged != 1 else ''} in image {name}'s distribution package files "
                           f"(examples and test keys the distribution ships; listed in search.json)",
                           subject(scan), source, evidence))  # fmt: skip
    if plain_hidden:
        out.append(Finding("image.hidden-in-history", Severity.LOW,
                           f"{plain_hidden} files deleted by later layers are still carried by earlier ones",
                           subject(scan), source, evidence))  # fmt: skip
    return out
