"""``forensics image ...``: an image's config, history, layers, files and secrets.

IMAGE is a local image (name, ``sha256:`` id or id prefix; read from its layer dirs on
disk, or from the engine's export stream with ``--from-engine`` or when the disk lacks
it), or the path of a ``docker save`` tar or an OCI layout (tar or directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.records import NotAvailable, display_path, path_record

if TYPE_CHECKING:
    from forensics.images import analysis
    from forensics.images.source import ImageSource

app = typer.Typer(
    help="Images: inspect, history, dockerfile, layers, files, search, diff; extract (safe).",
    no_args_is_help=True,
)

ImageRef = Annotated[str, typer.Argument(help="Image name, id, id prefix, or a docker-save/OCI path.",
                                         show_default=False)]  # fmt: skip
FromEngine = Annotated[
    bool, typer.Option("--from-engine", help="Read the engine's export stream, not the disk.")
]


def _open(ref: str, root: Any, docker_host: str | None, no_engine: bool, from_engine: bool) -> ImageSource:
    from forensics.images.source import open_image

    return open_image(host_context(root, docker_host, no_engine), ref, from_engine=from_engine)


def _scan(ref: str, root: Any, docker_host: str | None, no_engine: bool, from_engine: bool,
          search: bool = False, content: bool = True) -> analysis.ImageScan:  # fmt: skip
    from forensics.images import analysis

    source = _open(ref, root, docker_host, no_engine, from_engine)
    return analysis.scan_image(source, analysis.ScanOptions(search=search, content=content))


def inspect_record(scan: analysis.ImageScan) -> dict[str, Any]:
    from forensics.images import analysis

    cfg = scan.config.get("config") if isinstance(scan.config.get("config"), dict) else {}
    assert isinstance(cfg, dict)
    return {
        "ref": scan.ref, "source": scan.kind, "id": scan.image_id, "repo_tags": scan.repo_tags,
        "repo_digests": scan.repo_digests, "created": scan.config.get("created"),
        "architecture": scan.config.get("architecture"), "os": scan.config.get("os"),
        "user": cfg.get("User", ""), "env": cfg.get("Env") or [], "cmd": cfg.get("Cmd"),
        "entrypoint": cfg.get("Entrypoint"), "ports": sorted((cfg.get("ExposedPorts") or {}).keys()),
        "volumes": sorted((cfg.get("Volumes") or {}).keys()), "workdir": cfg.get("WorkingDir", ""),
        "labels": cfg.get("Labels") or {}, "healthcheck": cfg.get("Healthcheck"),
        "history": analysis.history(scan), "checks": scan.checks, "problems": scan.problems,
    }  # fmt: skip


def _out() -> Any:
    from forensics.report import terminal

    return terminal.out


def _safe(value: object) -> str:
    from forensics.report.terminal import safe

    return safe(value)


def _problems(scan: analysis.ImageScan) -> None:
    from forensics.report import terminal

    for check in scan.checks:
        if not check.ok:
            terminal.err.print(
                f"[red]digest mismatch[/] {terminal.safe(check.what)}: expected {terminal.safe(check.expected)}, "
                f"got {terminal.safe(check.actual)}"
            )
    for problem in scan.problems:
        terminal.err.print(f"problem: {terminal.safe(problem)}", highlight=False)
    for layer in scan.layers:
        for problem in layer.problems:
            terminal.err.print(f"problem: layer {layer.index}: {terminal.safe(problem)}", highlight=False)


@app.command("inspect")
def inspect_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
             no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """User, env, cmd, entrypoint, ports, volumes, workdir, labels, tags, created, history."""
    scan = _scan(image, root, docker_host, no_engine, from_engine)
    record = inspect_record(scan)
    if json:
        emit_json(record)
        return
    out = _out()
    for key, value in record.items():
        if key not in ("history", "checks", "problems"):
            out.print(f"[bold]{key:13}[/] {_safe(value)}", highlight=False)
    out.print(f"[bold]{'history':13}[/] {len(record['history'])} entries (forensics image history)")
    _problems(scan)


@app.command("history")
def history_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
             no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Every history entry, untruncated, empty layers included, with its layer digest and size."""
    from forensics.images import analysis

    scan = _scan(image, root, docker_host, no_engine, from_engine)
    entries = analysis.history(scan)
    if json:
        emit_json({"image": scan.image_id, "history": entries})
        return
    out = _out()
    for entry in entries:
        layer = (
            "empty"
            if entry.empty_layer
            else f"layer {entry.layer_index} {entry.layer_digest} {entry.layer_size}B"
        )
        out.print(f"[bold]{_safe(entry.created)}[/] [dim]{layer}[/]", highlight=False)
        out.print(f"    {_safe(entry.created_by)}", highlight=False, soft_wrap=True)
    _problems(scan)


def _paths(paths: tuple[bytes, ...]) -> list[dict[str, str]]:
    return [path_record(p) for p in paths]


@app.command("layers")
def layers_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
            no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Per layer: digest, size, command, files added/changed/deleted; and dive's efficiency figures."""
    from forensics.images import analysis

    # Paths, types and sizes are all this needs: no file's bytes are read.
    scan = _scan(image, root, docker_host, no_engine, from_engine, content=False)
    changes = analysis.layer_changes(scan)
    eff = analysis.efficiency(scan)
    if json:
        emit_json({
            "image": scan.image_id, "source": scan.kind,
            "layers": [{"index": c.index, "digest": c.digest, "diff_id": c.diff_id, "size": c.size,
                        "created_by": c.created_by, "added": _paths(c.added), "changed": _paths(c.changed),
                        "deleted": _paths(c.deleted), "whiteouts": _paths(c.whiteouts),
                        "opaque_dirs": _paths(c.opaque_dirs)} for c in changes],
            "efficiency": eff, "checks": scan.checks, "problems": scan.problems,
        })  # fmt: skip
        return
    from forensics.report.terminal import safe

    out = _out()
    for c in changes:
        out.print(f"[bold]layer {c.index}[/] {c.digest} {c.size}B  +{len(c.added)} ~{len(c.changed)} "
                  f"-{len(c.deleted)}", highlight=False)  # fmt: skip
        out.print(f"    {safe(c.created_by)}", highlight=False, soft_wrap=True)
    out.print(f"[bold]efficiency[/] {eff.efficiency:.4%}  wasted {eff.wasted}B  "
              f"user wasted {eff.user_wasted_percent:.2f}%  image {eff.size}B", highlight=False)  # fmt: skip
    for rep in eff.repeated[:20]:
        out.print(f"    {rep.count}x {rep.size:>10}B {safe(rep.path)}", highlight=False)
    _problems(scan)


@app.command("files")
def files_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
           no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Every path of the final file system: supplying layer, type, mode, owner, size, SHA-256."""
    from forensics.images import analysis

    scan = _scan(image, root, docker_host, no_engine, from_engine)
    final = analysis.final_files(scan)
    rows = [{**path_record(p), "layer": f.layer, "type": f.record.type, "mode": f"{f.record.mode:04o}",
             "uid": f.record.uid, "gid": f.record.gid, "size": f.record.size,
             "link": display_path(f.record.link), "sha256": f.record.sha256} for p, f in final.items()]  # fmt: skip
    if json:
        emit_json({"image": scan.image_id, "files": rows, "problems": scan.problems})
        return
    from forensics.report.terminal import safe

    out = _out()
    for row in rows:
        digest = row["sha256"]
        text = "" if digest is None else ("n/a" if isinstance(digest, NotAvailable) else digest)
        link = f" -> {row['link']}" if row["link"] else ""
        out.print(safe(f"{row['layer']:>3} {row['type']:8} {row['mode']} {row['uid']}:{row['gid']} {row['size']:>10} "
                       f"{text:64} {row['path']}{link}"), highlight=False)  # fmt: skip
    _problems(scan)


@app.command("search")
def search_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
            no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Suspicious names, secrets in files, ENV and history, and files hidden in history."""
    from forensics.images import analysis

    scan = _scan(image, root, docker_host, no_engine, from_engine, search=True)
    hits = analysis.search(scan)
    findings = analysis.search_findings(scan, hits, "image.search", ())
    if json:
        emit_json({"image": scan.image_id, "hits": hits, "findings": findings})
        return
    from forensics.report.terminal import safe

    out = _out()
    for hit in sorted(hits, key=lambda h: (h.severity.rank, h.kind, h.path)):
        where = "" if hit.layer is None else f"layer {hit.layer}"
        hidden = "" if hit.present_in_final else " [hidden]"
        out.print(safe(f"{hit.severity.value:8} {hit.kind:8} {where:9} {hit.path}  {hit.what} {hit.excerpt}{hidden}"),
                  highlight=False)  # fmt: skip
    _problems(scan)


@app.command("dockerfile")
def dockerfile_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
                no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """A Dockerfile reconstructed from the history (dfimage/whaler), FROM inferred from local images."""
    from forensics.images import dockerfile
    from forensics.images.source import open_image

    ctx = host_context(root, docker_host, no_engine)
    source = open_image(ctx, image, from_engine=from_engine)
    try:
        if not source.layers:  # the export stream: its config comes at the end
            for layer in source.walk():
                for _entry in layer.entries():
                    pass
    finally:
        source.close()
    problems = list(source.problems)
    candidates, read_history = dockerfile.local_images(ctx, problems)
    result = dockerfile.reconstruct(source.ref, source.config_digest, source.config, source.layers, candidates,
                                    read_history, problems)  # fmt: skip
    if json:
        emit_json(result)
        return
    from forensics.report import terminal

    terminal.out.print(terminal.safe(result.text, lines=True), end="", highlight=False, soft_wrap=True)
    for problem in result.problems:
        terminal.err.print(f"problem: {terminal.safe(problem)}", highlight=False)


@app.command("diff")
def diff_(image1: Annotated[str, typer.Argument(metavar="A", help="The baseline: image, id, or docker-save/OCI path.")],
          image2: Annotated[str, typer.Argument(metavar="B", help="The suspect: image, id, or docker-save/OCI path.")],
          json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False,
          from_engine: FromEngine = False) -> None:  # fmt: skip
    """container-diff's analyzers: files, history, metadata, sizes, and dpkg/apk/rpm/pip/npm packages."""
    from forensics.images import diff as image_diff

    scans = [
        image_diff.scan_for_diff(_open(ref, root, docker_host, no_engine, from_engine))
        for ref in (image1, image2)
    ]
    result = image_diff.diff(scans[0], scans[1])
    if json:
        emit_json(result)
        return
    _render_diff(result)


def _digest_text(value: object) -> str:
    if value is None:
        return "-"
    return "n/a" if isinstance(value, NotAvailable) else str(value)[:12]


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value}B"


def _render_diff(result: Any) -> None:
    from forensics.report import terminal

    out = terminal.out

    def line(text: str) -> None:
        out.print(terminal.safe(text), highlight=False, soft_wrap=True)

    line(f"A: {result.image1.ref} {result.image1.image_id} ({result.image1.source})")
    line(f"B: {result.image2.ref} {result.image2.image_id} ({result.image2.source})")
    line(f"files: +{len(result.added)} -{len(result.deleted)} ~{len(result.modified)}")
    for entry in result.added:
        line(f"  + {display_path(entry.path)}  {entry.type} {entry.size}B {_digest_text(entry.sha256)}")
    for entry in result.deleted:
        line(f"  - {display_path(entry.path)}  {entry.type} {entry.size}B {_digest_text(entry.sha256)}")
    for mod in result.modified:
        line(f"  ~ {display_path(mod.path)}  {','.join(mod.changed)}  {mod.size1}B -> {mod.size2}B  "
             f"{_digest_text(mod.sha256_1)} -> {_digest_text(mod.sha256_2)}")  # fmt: skip
    line(f"history: +{len(result.history.adds)} -{len(result.history.dels)}")
    for text in result.history.dels:
        line(f"  - {text}")
    for text in result.history.adds:
        line(f"  + {text}")
    line(f"metadata: {len(result.metadata)} fields differ")
    for field in result.metadata:
        if field.added or field.removed:
            changes = [f"+{i}" for i in field.added] + [f"-{i}" for i in field.removed]
            line(f"  {field.field}: {' '.join(changes)}")
        else:
            line(f"  {field.field}: {field.value1!r} -> {field.value2!r}")
    line(f"size: {result.size1}B -> {result.size2}B ({result.size2 - result.size1:+d}B)")
    for layer in result.layers:
        if layer.digest1 != layer.digest2:
            line(f"  layer {layer.index}: {_digest_text(layer.digest1)} {_bytes(layer.size1)} -> "
                 f"{_digest_text(layer.digest2)} {_bytes(layer.size2)}")  # fmt: skip
    for pkg in result.packages:
        line(f"{pkg.manager}: {pkg.count1} -> {pkg.count2} packages, +{len(pkg.added)} -{len(pkg.removed)} "
             f"~{len(pkg.changed)}")  # fmt: skip
        for p in pkg.added:
            line(f"  + {p.name} {p.version}")
        for p in pkg.removed:
            line(f"  - {p.name} {p.version}")
        for c in pkg.changed:
            line(f"  ~ {c.name} {c.version1} -> {c.version2}")
    for skipped in result.skipped:
        line(f"skipped: {skipped}")
    for problem in result.problems:
        terminal.err.print(f"problem: {terminal.safe(problem)}", highlight=False)


@app.command("extract")
def extract_(image: ImageRef,
             output: Annotated[Path, typer.Option("--output", "-o", help="A new or empty directory.", file_okay=False,
                                                  show_default=False)],
             layer: Annotated[int | None, typer.Option("--layer", help="Only this layer (0 is the lowest), "
                                                       "whiteouts not applied.", show_default=False)] = None,
             max_bytes: Annotated[int, typer.Option("--max-bytes", help="File content written in all.")] = 8 << 30,
             max_entries: Annotated[int, typer.Option("--max-entries", help="Entries written.")] = 1_000_000,
             relative_links: Annotated[bool, typer.Option("--relative-links", help="Write absolute link targets "
                                                          "relative to DIR instead of refusing them.")] = False,
             json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False,
             from_engine: FromEngine = False) -> None:  # fmt: skip
    """Safe extraction: nothing outside DIR, no escaping links, no devices or FIFOs, setuid/setgid cleared."""
    from forensics.images import extract as image_extract
    from forensics.images.source import open_image

    ctx = host_context(root, docker_host, no_engine)
    opened: list[ImageSource] = []

    def open_source() -> ImageSource:
        # The second read names the image by the id the first one found, so it is the same image.
        if opened and opened[0].kind in ("disk", "engine-export") and opened[0].config_digest:
            source = open_image(ctx, opened[0].config_digest, from_engine=opened[0].kind == "engine-export")
        else:
            source = open_image(ctx, image, from_engine=from_engine)
        opened.append(source)
        return source

    result = image_extract.extract(
        open_source, str(output), layer, image_extract.Limits(max_bytes, max_entries), relative_links
    )
    if json:
        emit_json(result)
        return
    from forensics.report import terminal

    def line(text: str, console: Any = terminal.out) -> None:
        console.print(terminal.safe(text), highlight=False, soft_wrap=True)

    kinds: dict[str, int] = {}
    for item in result.written:
        kinds[item.type] = kinds.get(item.type, 0) + 1
    what = "layer " + str(result.layer) if result.layer is not None else "merged view"
    line(f"{result.image_id} ({what}) -> {result.output}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
         + f", {result.bytes_written}B; {result.whiteouts_applied} whiteouts applied; {len(result.refused)} refused"
         + (f"; {len(result.rewritten_links)} absolute links made relative" if result.rewritten_links else ""))  # fmt: skip
    for refusal in result.refused:
        where = "" if refusal.layer is None else f"layer {refusal.layer} "
        line(f"  refused {where}{display_path(refusal.path) or '-'}: {refusal.reason}")
    for path in result.cleared_setid:
        line(f"  setuid/setgid cleared: {display_path(path)}")
    for problem in result.problems:
        line(f"problem: {problem}", terminal.err)
