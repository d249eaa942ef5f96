"""The hostile corpus, generated in code: layer tars, docker-save archives, OCI layouts and
overlay2 upper dirs an attacker could craft. Nothing here is a checked-in blob.

A case is a list of layers; a layer is a list of :class:`M` (member specs), turned into tar
bytes by :func:`layer_tar`. Escapes aim at :data:`CANARY` names so a test can look for them
anywhere below its tmp_path (and in /tmp) after the run.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

CANARY = "hostile-canary-7f3a"
"""Every escape in the corpus tries to create a file or dir with this name."""


@dataclasses.dataclass(frozen=True)
class M:
    """One tar member: name (str or bytes), kind, and data / link target."""

    name: str | bytes
    kind: str = "file"
    """file, dir, symlink, hardlink, char, block, fifo."""
    data: bytes = b""
    link: str | bytes = ""
    mode: int = 0o644
    uid: int = 0
    pax: dict[str, str] | None = None
    size: int | None = None
    """Header size when it must lie (the data written is still ``data``)."""


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}  # fmt: skip


def _s(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def layer_tar(members: list[M]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:  # fmt: skip
        for m in members:
            info = tarfile.TarInfo(_s(m.name))
            info.type = _TYPES[m.kind]
            info.mode = m.mode if m.kind != "dir" or m.mode != 0o644 else 0o755
            info.uid = info.gid = m.uid
            info.mtime = 1_700_000_000
            info.linkname = _s(m.link)
            if m.kind in ("char", "block"):
                info.devmajor, info.devminor = (1, 3) if m.kind == "char" else (8, 0)
            if m.pax:
                info.pax_headers = dict(m.pax)
            info.size = len(m.data) if m.kind == "file" else 0
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return buf.getvalue()


def raw_header(name: bytes, size: int, typeflag: bytes = b"0", linkname: bytes = b"") -> bytes:
    """One ustar header block, checksum computed; for members tarfile will not write."""
    block = bytearray(512)
    block[0 : len(name[:100])] = name[:100]
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1_700_000_000
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(linkname[:100])] = linkname[:100]
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def pax_block(records: dict[bytes, bytes]) -> bytes:
    """A PAX extended header member (type x) carrying ``records``, padded."""
    body = b""
    for key, value in records.items():
        payload = b" " + key + b"=" + value + b"\n"
        length = len(payload) + 1
        while len(str(length).encode()) + len(payload) != length:
            length = len(str(length).encode()) + len(payload)
        body += str(length).encode() + payload
    return raw_header(b"././@PaxHeader", len(body), b"x") + _pad(body)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


END = b"\0" * 1024


# --- the cases: name -> layers ---------------------------------------------------------------

LONG = "n" * 250
TOO_LONG_NAME = "/".join([LONG] * 20)  # > 4096 bytes, each segment a legal 250-byte name


def cases(outside: str) -> dict[str, list[list[M]]]:
    """Every tar-shaped case. ``outside`` is an absolute dir the escapes aim at."""
    canary_abs = f"{outside}/{CANARY}"
    chain = [M(f"c{i}", "symlink", link=f"{'x' * 200}/../c{i + 1}") for i in range(40)]
    return {
        "dotdot-and-absolute": [
            [
                M(f"../../{CANARY}", data=b"escape"),
                M(f"/{canary_abs.lstrip('/')}", data=b"abs"),
                M(f"a/../../{CANARY}", data=b"mid"),
                M(f"./../{CANARY}", data=b"dot"),
                M("ok", data=b"fine"),
            ]
        ],
        "link-then-through-link": [
            [
                M("d", "symlink", link="../.."),
                M(f"d/{CANARY}", data=b"through"),
                M("e", "symlink", link=outside),
                M(f"e/{CANARY}", data=b"through-abs"),
                M("ok", data=b"fine"),
            ]
        ],
        "two-layers-root-link": [
            [M("x", "symlink", link="/"), M("y", "symlink", link=outside)],
            [
                M(f"x/tmp/{CANARY}", data=b"layer2"),
                M(f"y/{CANARY}", data=b"layer2-abs"),
                M("x/etc", "dir"),
                M("x/etc/y", data=b"etc"),
            ],
        ],
        "links-to-root": [
            [
                M(".", "symlink", link="/"),
                M("r", "symlink", link="/"),
                M("r2", "symlink", link="../../../.."),
                M("r3", "symlink", link="."),
                M("r4", "symlink", link="r4/../.."),
                M("ok", data=b"fine"),
            ]
        ],
        "hardlinks": [
            [
                M("t", data=b"target"),
                M("s", "symlink", link=canary_abs),
                M("h-out", "hardlink", link=f"../../{CANARY}"),
                M("h-abs", "hardlink", link=canary_abs),
                M("h-sym", "hardlink", link="s"),
                M("h-missing", "hardlink", link="nope"),
                M("h-self", "hardlink", link="h-self"),
                M("h-ok", "hardlink", link="t"),
            ]
        ],
        "link-chains-and-loops": [
            [
                *chain,
                M("c40", "symlink", link=outside),
                M(f"c0/{CANARY}", data=b"chain"),
                M("l1", "symlink", link="l2"),
                M("l2", "symlink", link="l1"),
                M("l1/f", data=b"loop"),
                M("self", "symlink", link="self/self"),
                M("self/x", data=b"self"),
            ],
        ],
        "special-files": [
            [
                M("dev", "dir"),
                M("dev/null", "char"),
                M("dev/sda", "block"),
                M("fifo", "fifo"),
                M("suid", data=b"#!/bin/sh\nid\n", mode=0o4755),
                M("sgid", data=b"x", mode=0o2755),
                M(
                    "cap",
                    data=b"\x7fELF" + b"\0" * 60,
                    mode=0o755,
                    pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"},
                ),
                M("dev/../fifo2", "fifo"),
            ]
        ],
        "deep-path": [
            [
                M("a/" * 40_000 + "f", data=b"deep"),  # 80 KB of name, 40,000 directories
                M("b/" * 300 + "g", data=b"deeper than the walk goes"),
                M("ok", data=b"ok"),
            ]
        ],
        "whiteout-edges": [
            [
                M("dir", "dir"),
                M("dir/a", data=b"a"),
                M("dir/b", data=b"b"),
                M("gone", data=b"g"),
                M("keep", data=b"k"),
            ],
            [
                M("dir", "dir"),
                M("dir/c", data=b"c"),
                M("dir/d", data=b"d"),
                M("dir/.wh..wh..opq"),
                M("gone", data=b"again"),
                M(".wh.gone"),
                M(".wh.."),
                M(".wh..."),
                M(".wh."),
                M("dir/.wh...", data=b""),
                M("dir/.wh../x"),
                M(f".wh.../../{CANARY}"),
            ],
        ],
        "duplicates": [
            [
                M("dup", data=b"first"),
                M("dup", data=b"second"),
                M("dup", "dir"),
                M("dup/x", data=b"x"),
                M("dup", "symlink", link=outside),
                M(f"dup/{CANARY}", data=b"dup-escape"),
            ]
        ],
        "odd-names": [
            [
                M(b"bad-\xff\xfe-utf8", data=b"latin"),
                M("new\nline", data=b"nl"),
                M("tab\there", data=b"t"),
                M(TOO_LONG_NAME, data=b"long"),
                M("ok", data=b"fine"),
                M("esc\x1b[31mred", data=b"ansi"),
                M("[bold]markup[/bold]:skull:", data=b"rich"),
                M("[/oops]", data=b"unbalanced"),
                M("../[/oops]\x1b]0;title\x07", data=b"refused, shown in a problem"),
            ]
        ],
    }


# --- raw, byte-crafted layers ------------------------------------------------------------------


def huge_pax_layer() -> bytes:
    """A PAX header of 4 MiB (above the 1 MiB bound), then a normal member."""
    big = pax_block({b"comment": b"A" * (4 << 20)})
    ok = raw_header(b"after", 2) + _pad(b"ok")
    return big + raw_header(b"victim", 0) + ok + END


def pax_size_desync_layer() -> bytes:
    """A PAX ``size`` that disagrees with the ustar header, so the stream loses its place."""
    lie = pax_block({b"size": b"999999999999"}) + raw_header(b"liar", 5) + _pad(b"small")
    neg = pax_block({b"size": b"-5"}) + raw_header(b"neg", 5) + _pad(b"small")
    return raw_header(b"first", 1) + _pad(b"1") + neg + lie + raw_header(b"after", 1) + _pad(b"2") + END


def bad_header_layer() -> bytes:
    """Garbage after a good member: a checksum that does not add up."""
    good = raw_header(b"good", 3) + _pad(b"abc")
    broken = bytearray(raw_header(b"broken", 3))
    broken[148:156] = b"0000001\0"
    return good + bytes(broken) + _pad(b"abc") + END


def hidden_after_end_layer() -> bytes:
    """A member after the two zero blocks that end a tar: hidden from a reader that stops there."""
    return raw_header(b"seen", 1) + _pad(b"1") + END + raw_header(b"hidden", 6) + _pad(b"hidden") + END


def many_entries_chunks(count: int) -> Iterator[bytes]:
    """``count`` identical empty members (a duplicate, a million times), streamed."""
    block = raw_header(b"same", 0)
    batch = block * 2048
    left = count
    while left > 0:
        n = min(left, 2048)
        yield batch if n == 2048 else block * n
        left -= n
    yield END


def gzip_file(path: Path, chunks: Iterator[bytes] | list[bytes]) -> Path:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        for chunk in chunks:
            gz.write(chunk)
    return path


def bomb_chunks(total: int) -> Iterator[bytes]:
    """A tar of one member of ``total`` zero bytes: compresses about 1000:1."""
    yield raw_header(b"zeros", total)
    zeros = b"\0" * (1 << 20)
    left = total
    while left > 0:
        yield zeros[: min(left, len(zeros))]
        left -= min(left, len(zeros))
    yield END


# --- archives ---------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> tuple[str, str]:
    """(sha256 of the file, sha256 of its gunzipped content or of itself)."""
    blob = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        while chunk := f.read(1 << 20):
            blob.update(chunk)
    if head != b"\x1f\x8b":
        return blob.hexdigest(), blob.hexdigest()
    diff = hashlib.sha256()
    with gzip.open(path, "rb") as g:
        while chunk := g.read(1 << 20):
            diff.update(chunk)
    return blob.hexdigest(), diff.hexdigest()


Mutate = Callable[[list[dict[str, object]], dict[str, object]], None]


def docker_save(path: Path, layers: list[bytes | Path], mutate: Mutate | None = None,
                config_extra: dict[str, object] | None = None, blob_swap: bool = False) -> Path:  # fmt: skip
    """A ``docker save`` tar (blobs/sha256 layout, as Docker 25+ writes it).

    ``mutate(manifest, config)`` may rewrite both before they are written; ``blob_swap``
    stores each layer under the digest of different bytes (a hash that does not match).
    """
    members: list[tuple[str, bytes | Path]] = []
    names, diff_ids = [], []
    for layer in layers:
        if isinstance(layer, Path):
            blob, diff = _file_sha(layer)
        else:
            blob = diff = _sha(layer)
        if blob_swap:
            blob = _sha(b"not these bytes" + blob.encode())
        names.append(f"blobs/sha256/{blob}")
        diff_ids.append(f"sha256:{diff}")
        members.append((names[-1], layer))
    config: dict[str, object] = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids},
                                 "history": [{"created_by": "hostile"} for _ in layers]}  # fmt: skip
    config.update(config_extra or {})
    manifest: list[dict[str, object]] = [{"Config": "", "RepoTags": ["hostile:1"], "Layers": names}]
    if mutate is not None:
        mutate(manifest, config)
    config_bytes = json.dumps(config).encode()
    if manifest[0]["Config"] == "":
        manifest[0]["Config"] = f"blobs/sha256/{_sha(config_bytes)}"
    members.append((str(manifest[0]["Config"]), config_bytes))
    members.append(("manifest.json", json.dumps(manifest).encode()))
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, Path):
                info.size = data.stat().st_size
                with open(data, "rb") as f:
                    tar.addfile(info, f)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def oci_layout(top: Path, layers: list[bytes], index_digest: str | None = None,
               layer_digest: str | None = None) -> Path:  # fmt: skip
    """An OCI image layout directory; the digests may be overridden with hostile strings."""
    blobs = top / "blobs/sha256"
    blobs.mkdir(parents=True)
    descs = []
    for data in layers:
        (blobs / _sha(data)).write_bytes(data)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                      "digest": layer_digest or f"sha256:{_sha(data)}", "size": len(data)})  # fmt: skip
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(d)}" for d in layers]},
        }
    ).encode()
    (blobs / _sha(config)).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{_sha(config)}", "size": len(config)},
                           "layers": descs}).encode()  # fmt: skip
    (blobs / _sha(manifest)).write_bytes(manifest)
    (top / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {"schemaVersion": 2, "manifests": [{"digest": index_digest or f"sha256:{_sha(manifest)}",
                                                 "size": len(manifest)}]}  # fmt: skip
    (top / "index.json").write_text(json.dumps(index))
    return top
