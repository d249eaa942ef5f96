"""``forensics image ...``: an image's config, history, layers, files and secrets.

IMAGE is a local image (name, ``sha256:`` id or id prefix; read from its layer dirs on
disk, or from the engine's export stream with ``--from-engine`` or when the disk lacks
it), or the path of a ``docker save`` tar or an OCI layout (tar or directory).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.images import analysis
from forensics.images.source import ImageSource, open_image
from forensics.records import NotAvailable, display_path, path_record

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
    return open_image(host_context(root, docker_host, no_engine), ref, from_engine=from_engine)


def _scan(ref: str, root: Any, docker_host: str | None, no_engine: bool, from_engine: bool,
          search: bool = False) -> analysis.ImageScan:  # fmt: skip
    source = _open(ref, root, docker_host, no_engine, from_engine)
    return analysis.scan_image(source, analysis.ScanOptions(search=search))


def inspect_record(scan: analysis.ImageScan) -> dict[str, Any]:
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


def _problems(scan: analysis.ImageScan) -> None:
    from forensics.report import terminal

    for check in scan.checks:
        if not check.ok:
            terminal.err.print(
                f"[red]digest mismatch[/] {check.what}: expected {check.expected}, got {check.actual}"
            )
    for problem in scan.problems:
        terminal.err.print(f"problem: {problem}", highlight=False)
    for layer in scan.layers:
        for problem in layer.problems:
            terminal.err.print(f"problem: layer {layer.index}: {problem}", highlight=False)


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
            out.print(f"[bold]{key:13}[/] {value}", highlight=False)
    out.print(f"[bold]{'history':13}[/] {len(record['history'])} entries (forensics image history)")
    _problems(scan)


@app.command("history")
def history_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
             no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Every history entry, untruncated, empty layers included, with its layer digest and size."""
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
        out.print(f"[bold]{entry.created}[/] [dim]{layer}[/]", highlight=False)
        out.print(f"    {entry.created_by}", highlight=False, soft_wrap=True)
    _problems(scan)


def _paths(paths: tuple[bytes, ...]) -> list[dict[str, str]]:
    return [path_record(p) for p in paths]


@app.command("layers")
def layers_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
            no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Per layer: digest, size, command, files added/changed/deleted; and dive's efficiency figures."""
    scan = _scan(image, root, docker_host, no_engine, from_engine)
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
    out = _out()
    for c in changes:
        out.print(f"[bold]layer {c.index}[/] {c.digest} {c.size}B  +{len(c.added)} ~{len(c.changed)} "
                  f"-{len(c.deleted)}", highlight=False)  # fmt: skip
        out.print(f"    {c.created_by}", highlight=False, soft_wrap=True)
    out.print(f"[bold]efficiency[/] {eff.efficiency:.4%}  wasted {eff.wasted}B  "
              f"user wasted {eff.user_wasted_percent:.2f}%  image {eff.size}B", highlight=False)  # fmt: skip
    for rep in eff.repeated[:20]:
        out.print(f"    {rep.count}x {rep.size:>10}B {rep.path}", highlight=False)
    _problems(scan)


@app.command("files")
def files_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
           no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Every path of the final file system: supplying layer, type, mode, owner, size, SHA-256."""
    scan = _scan(image, root, docker_host, no_engine, from_engine)
    final = analysis.final_files(scan)
    rows = [{**path_record(p), "layer": f.layer, "type": f.record.type, "mode": f"{f.record.mode:04o}",
             "uid": f.record.uid, "gid": f.record.gid, "size": f.record.size,
             "link": display_path(f.record.link), "sha256": f.record.sha256} for p, f in final.items()]  # fmt: skip
    if json:
        emit_json({"image": scan.image_id, "files": rows, "problems": scan.problems})
        return
    out = _out()
    for row in rows:
        digest = row["sha256"]
        text = "" if digest is None else ("n/a" if isinstance(digest, NotAvailable) else digest)
        link = f" -> {row['link']}" if row["link"] else ""
        out.print(f"{row['layer']:>3} {row['type']:8} {row['mode']} {row['uid']}:{row['gid']} {row['size']:>10} "
                  f"{text:64} {row['path']}{link}", highlight=False, markup=False)  # fmt: skip
    _problems(scan)


@app.command("search")
def search_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
            no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """Suspicious names, secrets in files, ENV and history, and files hidden in history."""
    scan = _scan(image, root, docker_host, no_engine, from_engine, search=True)
    hits = analysis.search(scan)
    findings = analysis.search_findings(scan, hits, "image.search", ())
    if json:
        emit_json({"image": scan.image_id, "hits": hits, "findings": findings})
        return
    out = _out()
    for hit in sorted(hits, key=lambda h: (h.severity.rank, h.kind, h.path)):
        where = "" if hit.layer is None else f"layer {hit.layer}"
        hidden = "" if hit.present_in_final else " [hidden]"
        out.print(f"{hit.severity.value:8} {hit.kind:8} {where:9} {hit.path}  {hit.what} {hit.excerpt}{hidden}",
                  highlight=False, markup=False)  # fmt: skip
    _problems(scan)


@app.command("dockerfile")
def dockerfile_(image: ImageRef, json: Json = False, root: Root = None, docker_host: DockerHost = None,
                no_engine: NoEngine = False, from_engine: FromEngine = False) -> None:  # fmt: skip
    """A Dockerfile reconstructed from the history (dfimage/whaler), FROM inferred from local images."""
    from forensics.images import dockerfile

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

    terminal.out.print(result.text, end="", highlight=False, markup=False, soft_wrap=True)
    for problem in result.problems:
        terminal.err.print(f"problem: {problem}", highlight=False, markup=False)
