"""Stacking an image's layers (whiteouts, opaque directories, a file over a directory)
through the indexed :class:`analysis.Stack`, against the plain rule kept here as the
oracle: every path of the tree tested against every whiteout, as the code once did."""

from __future__ import annotations

import random

from forensics.images import analysis
from forensics.images.analysis import FileRecord, ImageScan, LayerRecord, Placed


def _under(path: bytes, top: bytes) -> bool:
    return path.startswith(top.rstrip(b"/") + b"/")


def _plain_apply(
    state: dict[bytes, Placed], layer: LayerRecord
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The rule as it reads in the OCI layer spec, one path at a time (quadratic)."""
    lower = dict(state)
    doomed = set()
    for mark in layer.files:
        for path in lower:
            if (mark.type == "whiteout" and (path == mark.path or _under(path, mark.path))) or (
                mark.type == "opaque" and _under(path, mark.path)
            ):
                doomed.add(path)
    for path in doomed:
        del state[path]
    added: list[bytes] = []
    changed: list[bytes] = []
    for record in layer.files:
        if record.type in ("whiteout", "opaque"):
            continue
        (changed if record.path in lower else added).append(record.path)
        state[record.path] = Placed(layer.index, record)
        below = lower.get(record.path)
        if record.type != "dir" and below is not None and below.record.type == "dir":
            for path in [p for p in state if _under(p, record.path)]:
                del state[path]
    present = {r.path for r in layer.files if r.type not in ("whiteout", "opaque")}
    return added, changed, [p for p in sorted(doomed) if p not in present]


def _record(path: bytes, kind: str, size: int = 0) -> FileRecord:
    return FileRecord(path, kind, 0o644, 0, 0, size, 0.0, b"", None)


def _layer(index: int, files: list[FileRecord]) -> LayerRecord:
    size = sum(f.size for f in files)
    return LayerRecord(
        index, f"sha256:{index:064x}", f"sha256:{index:064x}", "", None, size, tuple(files), ()
    )


def _scan(layers: list[LayerRecord]) -> ImageScan:
    return ImageScan("test", "docker-archive", "sha256:" + "0" * 64, (), (), {}, tuple(layers), (), ())


def _random_layers(rng: random.Random) -> list[LayerRecord]:
    names = [b"a", b"b", b"c"]
    layers = []
    for index in range(rng.randint(1, 4)):
        files = []
        for _ in range(rng.randint(0, 14)):
            path = b"/" + b"/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
            kind = rng.choice(["file", "dir", "dir", "symlink", "whiteout", "opaque"])
            files.append(_record(path, kind, rng.randint(0, 9) if kind == "file" else 0))
        if rng.random() < 0.3:
            files.insert(0, _record(b"/", "dir"))
        layers.append(_layer(index, files))
    return layers


def test_stacking_gives_what_the_plain_rule_gives() -> None:
    rng = random.Random(20261126)
    for _ in range(3000):
        layers = _random_layers(rng)
        stack, plain = analysis.Stack(), {}
        for layer in layers:
            assert analysis._apply(stack, layer) == _plain_apply(plain, layer), layers
            assert stack.files == plain, layers
        assert analysis.final_files(_scan(layers)) == dict(sorted(plain.items()))


def test_the_size_a_whiteout_removes_is_the_whole_tree_under_it() -> None:
    lower = [
        _record(b"/d", "dir"),
        _record(b"/d/x", "file", 5),
        _record(b"/d/e/y", "file", 7),
        _record(b"/z", "file", 3),
    ]
    upper = [_record(b"/d", "whiteout"), _record(b"/d", "whiteout"), _record(b"/z", "file", 3)]
    figures = analysis.efficiency(_scan([_layer(0, lower), _layer(1, upper)]))
    # dive counts a removed directory at the size of all it held: 5 + 7, once for each leaf.
    assert {r.path: (r.count, r.size) for r in figures.repeated} == {"/d": (2, 24), "/z": (2, 6)}
