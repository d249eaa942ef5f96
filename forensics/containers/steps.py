"""Triage steps about containers."""

from __future__ import annotations

from forensics.containers.listing import merge, recheck
from forensics.records import NotAvailable
from forensics.steps import Need, Phase, Step, StepContext, register


def containers_list(ctx: StepContext) -> None:
    inventory = ctx.state.get("disk_inventory")
    disk = inventory.containers if inventory is not None else []
    api = ctx.state.get("api_containers")
    if api is None:
        engine = ctx.host.engine()
        api = engine if isinstance(engine, NotAvailable) else NotAvailable("engine inventory did not run")
    entries, findings = merge(api, disk)
    engine = ctx.host.engine()
    if findings and not isinstance(engine, NotAvailable):
        on_disk = ctx.host.disk()
        findings = recheck(findings, engine.knows_container, on_disk.has_container)
    ctx.state["containers"] = entries
    ctx.sink.add_json("containers.json", entries)
    for finding in findings:
        ctx.report(finding)


register(Step("containers.list", Phase.FILESYSTEMS, containers_list, frozenset({Need.DOCKER_DATA}),
              timeout=60, description="containers from the API and the disk, cross-checked"))  # fmt: skip
