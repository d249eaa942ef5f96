"""Triage steps that read the host itself: facts, the Engine's view, the disk's view."""

from __future__ import annotations

from typing import Any

from forensics.errors import UnsafePath
from forensics.evidence.names import segment
from forensics.findings import Finding, Severity
from forensics.host import facts
from forensics.host.disk import MAX_JSON, is_hex64
from forensics.steps import Need, Phase, Step, StepContext, register


def host_facts(ctx: StepContext) -> None:
    info = ctx.state.get("engine_info")
    record = facts.collect(ctx.host, info if isinstance(info, dict) else facts.NotAvailable("no engine info"))
    ctx.state["host_facts"] = record
    ctx.sink.add_json("host/facts.json", record)


def engine_info(ctx: StepContext) -> None:
    engine = ctx.host.require_engine()
    ctx.sink.add_json("engine/version.json", engine.version())
    info = engine.info()
    ctx.state["engine_info"] = info
    ctx.sink.add_json("engine/info.json", info)


def _each(ctx: StepContext, kind: str, items: list[str], inspect: Any, folder: str) -> None:
    engine = ctx.host.require_engine()
    for key, answer in zip(items, engine.each(inspect, items), strict=True):
        if isinstance(answer, Exception):  # one object gone or broken must not lose the rest
            ctx.warn(f"inspect of {kind} {key[:80]!r} failed: {answer}", object=key)
            continue
        try:
            ctx.sink.add_json(f"engine/{folder}/{segment(key.removeprefix('sha256:'))}.json", answer)
        except Exception as exc:
            ctx.warn(f"inspect of {kind} {key[:80]!r} failed: {exc}", object=key)


def engine_inventory(ctx: StepContext) -> None:
    engine = ctx.host.require_engine()
    containers = engine.containers()
    ctx.state["api_containers"] = containers
    ctx.sink.add_json("engine/containers.json", containers)
    ids = [str(c.get("Id", "")) for c in containers]
    for bad in (i for i in ids if not is_hex64(i)):
        ctx.warn(f"the Engine API returned a malformed container id {bad[:80]!r}")
    _each(ctx, "container", [i for i in ids if is_hex64(i)], engine.inspect_container, "containers")
    images = engine.images()
    ctx.state["api_images"] = images
    ctx.sink.add_json("engine/images.json", images)
    image_ids = sorted({str(i.get("Id", "")) for i in images if str(i.get("Id", "")).startswith("sha256:")})
    _each(ctx, "image", image_ids, engine.inspect_image, "images")
    _each(ctx, "image history", image_ids, engine.image_history, "image-history")
    networks = engine.networks()
    ctx.sink.add_json("engine/networks.json", networks)
    _each(ctx, "network", [str(n.get("Id", "")) for n in networks], engine.inspect_network, "networks")
    volumes = engine.volumes()
    ctx.sink.add_json("engine/volumes.json", volumes)
    _each(ctx, "volume", [str(v.get("Name", "")) for v in volumes], engine.inspect_volume, "volumes")


def _copy_raw(ctx: StepContext, source: str, dest: str) -> None:
    """Keep a metadata file byte for byte, as the disk holds it."""
    try:
        with ctx.host.rootfs().open_regular(source) as (fd, _st):
            record = ctx.sink.add_fd(dest, fd, limit=MAX_JSON)
        if record.truncated:
            ctx.warn(f"{source} is larger than {MAX_JSON} bytes: copy truncated", path=source)
    except (UnsafePath, OSError) as exc:
        ctx.warn(f"could not copy {source}: {exc}", path=source)


def disk_inventory(ctx: StepContext) -> None:
    disk = ctx.host.disk()
    inventory = disk.inventory()
    ctx.state["disk_inventory"] = inventory
    ctx.sink.add_json("disk/inventory.json", inventory)
    for problem in inventory.problems:
        ctx.warn(problem.message, path=problem.path)
        ctx.report(
            Finding(
                rule="inventory.disk-problem",
                severity=Severity.LOW,
                title=f"unreadable or malformed docker metadata: {problem.path}",
                subject="host",
                source=ctx.step,
                evidence=("disk/inventory.json",),
                details=problem.message,
            )
        )
    for container in inventory.containers:
        base = f"disk/containers/{container.id}"
        _copy_raw(ctx, container.config_path, f"{base}/config.v2.json")
        if isinstance(container.hostconfig_path, str):
            _copy_raw(ctx, container.hostconfig_path, f"{base}/hostconfig.json")
    for image in inventory.images:
        _copy_raw(ctx, image.config_path, f"disk/images/{image.id[7:]}.json")
    if isinstance(inventory.driver, str):
        repos = disk.path("image", inventory.driver, "repositories.json")
        _copy_raw(ctx, repos, "disk/repositories.json")


register(Step("engine.info", Phase.CONTEXT, engine_info, frozenset({Need.ENGINE}), timeout=60, after=(),
              description="Engine version and info (daemon id, clock, drivers)"))  # fmt: skip
register(Step("host.facts", Phase.CONTEXT, host_facts, timeout=60, after=("engine.info",),
              description="host identity, kernel, clocks"))  # fmt: skip
register(Step("engine.inventory", Phase.LIVE_STATE, engine_inventory, frozenset({Need.ENGINE}),
              timeout=600, after=(), description="inspect of every container, image, network and volume"))  # fmt: skip
register(Step("disk.inventory", Phase.FILESYSTEMS, disk_inventory, frozenset({Need.DOCKER_DATA}),
              timeout=600, after=(), description="containers and images read from var/lib/docker"))  # fmt: skip
