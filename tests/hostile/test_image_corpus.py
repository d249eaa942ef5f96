"""The hostile corpus through the image reader and every image command that can meet it:
``docker save`` tars and OCI layouts built here, read by open_path, scanned (layers, files,
search) and extracted, in-process and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.images import analysis, source
from forensics.images.extract import Limits, extract
from forensics.images.source import BadArchive, open_path
from tests.hostile import corpus
from tests.hostile.harness import assert_same, canaries, escapes, guarded, snapshot

CASES = corpus.cases("/OUTSIDE")  # the names only; each test builds its own with its own dir


def _build(tmp_path: Path, case: str) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    layers = [corpus.layer_tar(members) for members in corpus.cases(str(outside))[case]]
    archive = corpus.docker_save(tmp_path / "image.tar", list(layers))
    return archive, outside


def _problems(scan: analysis.ImageScan) -> list[str]:
    return list(scan.problems) + [p for layer in scan.layers for p in layer.problems]


def _extract(archive: Path, out: Path, **kw: object) -> object:
    return extract(lambda: open_path(archive), str(out), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_is_read_scanned_searched_and_extracted_safely(tmp_path: Path, case: str) -> None:
    archive, outside = _build(tmp_path, case)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "cli-out").mkdir()
    before = snapshot(tmp_path.parent, skip=[out, tmp_path / "cli-out"])
    scan = guarded(lambda: analysis.scan_image(open_path(archive)), case)
    assert all(c.ok for c in scan.checks), scan.checks
    guarded(lambda: analysis.search(scan), case)
    guarded(lambda: analysis.layer_changes(scan), case)
    result = guarded(lambda: _extract(archive, out), case)
    if case != "odd-names":  # odd names are legal data: written under DIR, not refused
        assert result.refused or result.problems or result.cleared_setid, f"{case}: nothing recorded"  # type: ignore[attr-defined]
    for command in ("layers", "files", "search", "inspect", "history"):
        code = guarded(lambda: main(["image", command, str(archive), "--json", "--no-engine"]), command)
        assert code in (0, 1), f"image {command} on {case}: exit {code}"
    code = guarded(lambda: main(["image", "extract", str(archive), "-o", str(tmp_path / "cli-out"),
                                 "--no-engine", "--relative-links"]), "cli extract")  # fmt: skip
    assert code in (0, 1)
    assert_same(before, snapshot(tmp_path.parent, skip=[out, tmp_path / "cli-out"]))
    assert canaries(outside, tmp_path / "image.tar", Path("/tmp"), Path("/etc"), Path("/")) == []
    assert escapes(out) == [] and escapes(tmp_path / "cli-out") == []
    assert not any(
        p.name == "y" for p in Path("/etc").iterdir() if p.stat().st_mtime > archive.stat().st_mtime
    )


def test_refusals_name_what_they_refused(tmp_path: Path) -> None:
    archive, _ = _build(tmp_path, "dotdot-and-absolute")
    scan = analysis.scan_image(open_path(archive))
    problems = _problems(scan)
    assert sum("refused member" in p for p in problems) == 4, problems
    assert [f.path for f in scan.layers[0].files] == [b"/ok"]


def test_through_link_members_are_never_written_through_the_link(tmp_path: Path) -> None:
    archive, outside = _build(tmp_path, "two-layers-root-link")
    result = _extract(archive, tmp_path / "out")
    refused = {r.path for r in result.refused}  # type: ignore[attr-defined]
    assert b"/x" in refused and b"/y" in refused, result
    assert not (tmp_path / "out/x/etc/y").exists() or not (tmp_path / "out/x").is_symlink()
    assert list(outside.iterdir()) == []


def test_special_files_are_not_created_and_setuid_is_cleared(tmp_path: Path) -> None:
    archive, _ = _build(tmp_path, "special-files")
    scan = analysis.scan_image(open_path(archive))
    kinds = {f.path: f.type for f in scan.layers[0].files}
    assert kinds[b"/dev/null"] == "char" and kinds[b"/dev/sda"] == "block" and kinds[b"/fifo"] == "fifo"
    modes = {f.path: f.mode for f in scan.layers[0].files}
    assert modes[b"/suid"] & 0o4000
    result = _extract(archive, tmp_path / "out")
    assert b"/suid" in result.cleared_setid  # type: ignore[attr-defined]
    out = tmp_path / "out"
    assert not (out / "dev/null").exists() and not (out / "fifo").exists()
    assert not (out / "suid").stat().st_mode & 0o6000


def test_whiteout_edges(tmp_path: Path) -> None:
    archive, _ = _build(tmp_path, "whiteout-edges")
    scan = analysis.scan_image(open_path(archive))
    problems = _problems(scan)
    assert any("refused whiteout" in p for p in problems), problems
    final = analysis.final_files(scan)
    # The opaque marker after its siblings hides only the lower layer's entries.
    assert b"/dir/a" not in final and b"/dir/b" not in final
    assert b"/dir/c" in final and b"/dir/d" in final
    assert b"/keep" in final
    out = tmp_path / "out"
    _extract(archive, out)
    assert not (out / "dir/a").exists() and (out / "dir/c").read_bytes() == b"c"


def test_deep_paths_are_refused_not_written(tmp_path: Path) -> None:
    """80 KB of name, 40,000 directories deep, and a path 300 deep: recorded and refused by
    extract (a tree no program could open by its path, and that breaks recursive tools);
    the layers' other work on them costs their length, not length times depth."""
    archive, _ = _build(tmp_path, "deep-path")
    scan = guarded(lambda: analysis.scan_image(open_path(archive)), "deep scan")
    assert len(scan.layers[0].files) == 3
    assert len(guarded(lambda: analysis.final_files(scan), "deep files")) == 3
    out = tmp_path / "out"
    result = guarded(lambda: _extract(archive, out), "deep extract")
    refused = {r.path[:3]: r.reason for r in result.refused}  # type: ignore[attr-defined]
    assert set(refused) == {b"/a/", b"/b/"} and all("not written" in why for why in refused.values())
    assert (out / "ok").read_bytes() == b"ok" and not (out / "a").exists() and not (out / "b").exists()


def test_odd_names_survive_as_escaped_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = corpus.cases(str(outside))["odd-names"]
    hostile_history = {"history": [{"created_by": "/bin/sh -c \x1b[2J[/x] evil\nFAKE LINE"}]}
    archive = corpus.docker_save(
        tmp_path / "image.tar", [corpus.layer_tar(members[0])], config_extra=hostile_history
    )
    scan = analysis.scan_image(open_path(archive))
    paths = {f.path for f in scan.layers[0].files}
    assert b"/bad-\xff\xfe-utf8" in paths and b"/new\nline" in paths
    assert any(len(p) > 4096 for p in paths)
    assert main(["image", "files", str(archive), "--no-engine"]) in (0, 1)
    text = capsys.readouterr().out
    assert "\x1b" not in text and "/new\nline" not in text and "/new\\x0aline" in text
    for command in ("layers", "history", "search", "inspect"):
        assert main(["image", command, str(archive), "--no-engine"]) in (0, 1)
        both = capsys.readouterr()
        assert "\x1b" not in both.out + both.err and "\nFAKE LINE" not in both.out + both.err
    assert main(["image", "extract", str(archive), "-o", str(tmp_path / "o"), "--no-engine"]) in (0, 1)
    both = capsys.readouterr()
    assert "\x1b" not in both.out + both.err and "[/oops]" in both.err + both.out
    assert main(["image", "files", str(archive), "--no-engine", "--json"]) in (0, 1)
    json.loads(capsys.readouterr().out)


# --- byte-crafted layers: headers that lie, bombs, floods ---------------------------------------


@pytest.mark.parametrize(
    "layer", ["huge_pax_layer", "pax_size_desync_layer", "bad_header_layer", "hidden_after_end_layer"]
)
def test_broken_headers_are_problems_not_crashes(tmp_path: Path, layer: str) -> None:
    data = getattr(corpus, layer)()
    archive = corpus.docker_save(
        tmp_path / "image.tar", [data, corpus.layer_tar([corpus.M("next", data=b"n")])]
    )
    scan = guarded(lambda: analysis.scan_image(open_path(archive)), layer)
    assert scan.layers[0].problems, scan.layers[0]
    assert [f.path for f in scan.layers[1].files] == [b"/next"]  # the rest of the run intact
    result = guarded(lambda: _extract(archive, tmp_path / "out"), layer)
    assert (tmp_path / "out/next").read_bytes() == b"n"
    assert result.problems or result.refused  # type: ignore[attr-defined]


def test_gzip_bomb_is_read_in_bounded_memory(tmp_path: Path) -> None:
    bomb = corpus.gzip_file(tmp_path / "bomb.tar.gz", corpus.bomb_chunks(1 << 30))
    assert bomb.stat().st_size < 8 << 20
    archive = corpus.docker_save(
        tmp_path / "image.tar", [bomb, corpus.layer_tar([corpus.M("next", data=b"n")])]
    )
    bomb.unlink()
    scan = guarded(lambda: analysis.scan_image(open_path(archive)), "gzip bomb")
    zeros = scan.layers[0].files[0]
    assert zeros.size == 1 << 30 and not isinstance(zeros.sha256, str)  # over the hash limit: not read
    assert all(c.ok for c in scan.checks)
    assert [f.path for f in scan.layers[1].files] == [b"/next"]
    result = guarded(
        lambda: _extract(archive, tmp_path / "out", limits=Limits(max_bytes=16 << 20)), "bomb extract"
    )
    assert any(r.path == b"/zeros" for r in result.refused), result  # type: ignore[attr-defined]
    assert not (tmp_path / "out/zeros").exists() or (tmp_path / "out/zeros").stat().st_size <= 16 << 20


def test_a_million_entries_stop_at_the_member_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flood = corpus.gzip_file(tmp_path / "flood.tar.gz", corpus.many_entries_chunks(1_000_000))
    archive = corpus.docker_save(
        tmp_path / "image.tar", [flood, corpus.layer_tar([corpus.M("next", data=b"n")])]
    )
    monkeypatch.setattr(source, "MAX_MEMBERS", 10_000)
    scan = guarded(lambda: analysis.scan_image(open_path(archive)), "flood")
    assert len(scan.layers[0].files) == 10_000
    assert any("more than 10000 entries" in p for p in scan.layers[0].problems)
    assert all(c.ok for c in scan.checks)  # the rest of the layer is still hashed
    assert [f.path for f in scan.layers[1].files] == [b"/next"]


def test_a_storm_of_whiteouts_over_a_big_tree(tmp_path: Path) -> None:
    """20,000 whiteouts and four opaque dirs over 40,000 files: each is applied under its own
    directory, not by a test of every path of the tree (that was 800 million tests, minutes:
    the hang detector's business)."""
    lower = [corpus.M(f"d{d}", "dir") for d in range(400)]
    lower += [corpus.M(f"d{d}/f{f}", data=b"x") for d in range(400) for f in range(100)]
    upper = [corpus.M(f"d{d}/.wh.f{f}") for d in range(400) for f in range(0, 100, 2)]
    upper += [corpus.M(f"d{d}/.wh..wh..opq") for d in range(0, 400, 100)]
    archive = corpus.docker_save(tmp_path / "image.tar", [corpus.layer_tar(lower), corpus.layer_tar(upper)])
    metadata = analysis.ScanOptions(
        content=False
    )  # what the whiteouts need; reading the bytes is tested above
    scan = guarded(lambda: analysis.scan_image(open_path(archive), metadata), "whiteout storm")
    changes = guarded(lambda: analysis.layer_changes(scan), "whiteout storm: layers")
    assert len(changes[1].deleted) == 20_000 + 4 * 50
    final = guarded(lambda: analysis.final_files(scan), "whiteout storm: files")
    assert len(final) == 400 + 396 * 50
    assert b"/d1/f1" in final and b"/d1/f2" not in final and b"/d100/f1" not in final
    assert guarded(lambda: analysis.efficiency(scan), "whiteout storm: efficiency").size == 40_000


# --- manifests and digests that lie ------------------------------------------------------------


def _layer() -> bytes:
    return corpus.layer_tar([corpus.M("f", data=b"f")])


def _set(key: str, value: object) -> corpus.Mutate:
    def mutate(manifest: list[dict[str, object]], _config: dict[str, object]) -> None:
        manifest[0][key] = value

    return mutate


@pytest.mark.parametrize("mutate", [
    _set("Layers", ["../../x"]), _set("Layers", ["blobs/sha256/../../../etc/passwd"]),
    _set("Config", "../../config.json"), _set("Config", "sha256:../.."), _set("Layers", "not a list"),
    _set("Layers", [{"x": 1}]), _set("Config", None),
], ids=["layer-dotdot", "layer-blob-dotdot", "config-dotdot", "config-digest-dotdot", "layers-str",
        "layers-obj", "config-none"])  # fmt: skip
def test_hostile_manifest_is_refused(tmp_path: Path, mutate: corpus.Mutate) -> None:
    archive = corpus.docker_save(tmp_path / "image.tar", [_layer()], mutate=mutate)
    with pytest.raises(BadArchive):
        open_path(archive)
    assert main(["image", "layers", str(archive), "--no-engine"]) == 2


def test_hostile_diff_ids_are_ignored(tmp_path: Path) -> None:
    def mutate(_manifest: list[dict[str, object]], config: dict[str, object]) -> None:
        config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:../..", "../../etc/passwd"]}

    archive = corpus.docker_save(tmp_path / "image.tar", [_layer()], mutate=mutate)
    scan = analysis.scan_image(open_path(archive))
    assert any("not sha256 digests" in p for p in scan.problems)


def test_a_blob_whose_hash_does_not_match_is_a_finding(tmp_path: Path) -> None:
    archive = corpus.docker_save(tmp_path / "image.tar", [_layer()], blob_swap=True)
    scan = analysis.scan_image(open_path(archive))
    bad = [c for c in scan.checks if not c.ok]
    assert [c.what for c in bad] == ["layer 0 blob"]
    findings = analysis.integrity_findings(scan, "test")
    assert [f.rule for f in findings] == ["image.digest-mismatch"] and "layer 0 blob" in findings[0].title


@pytest.mark.parametrize("where", ["index", "layer"])
def test_oci_digests_with_dotdot_are_refused(tmp_path: Path, where: str) -> None:
    kw = (
        {"index_digest": "sha256:../../../etc/passwd"}
        if where == "index"
        else {"layer_digest": "sha256:../.."}
    )
    layout = corpus.oci_layout(tmp_path / "oci", [_layer()], **kw)
    with pytest.raises(BadArchive):
        open_path(layout)


def test_oci_layout_runs_the_corpus(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layers = [corpus.layer_tar(m) for m in corpus.cases(str(outside))["two-layers-root-link"]]
    layout = corpus.oci_layout(tmp_path / "oci", layers)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path, skip=[out])
    result = guarded(lambda: extract(lambda: open_path(layout), str(out)), "oci")
    assert result.refused
    assert_same(before, snapshot(tmp_path, skip=[out]))
    assert canaries(outside, Path("/tmp")) == [] and escapes(out) == []
