"""Triage step: every image a container uses, read from its layer dirs on disk once:
history, the reconstructed Dockerfile, layers with dive's efficiency figures, and the
secret search. Stored under ``images/<hex>/``. Our own appliance image is left out.

With ``FORENSICS_ALL_IMAGES=1`` in the environment, every image on disk is analysed, not
only those a container uses (the CLI's ``--all-images`` is meant to set it).
"""

from __future__ import annotations

import os
from typing import Any

from forensics.evidence.names import segment
from forensics.host.disk import is_digest
from forensics.images import analysis, dockerfile
from forensics.images.source import DiskSource
from forensics.records import NotAvailable, path_record
from forensics.steps import Need, Phase, Step, StepContext, register

ALL_IMAGES_ENV = "FORENSICS_ALL_IMAGES"


def _wanted_images(ctx: StepContext, inventory: Any) -> list[str]:
    """Images containers use (all images with FORENSICS_ALL_IMAGES=1), ours left out."""
    ids: set[str] = set()
    for container in getattr(inventory, "containers", []) or []:
        ids.add(container.image_id)
    for entry in ctx.state.get("containers") or []:
        ids.add(getattr(entry, "image_id", ""))
    if os.environ.get(ALL_IMAGES_ENV) == "1":
        ids.update(image.id for image in getattr(inventory, "images", []) or [])
    me = ctx.state.get("self")
    own = getattr(me, "image_id", None)
    if isinstance(own, str):
        ids.discard(own)
    return sorted(i for i in ids if is_digest(i))


def _changes_record(changes: list[analysis.LayerChanges]) -> list[dict[str, Any]]:
    return [{"index": c.index, "digest": c.digest, "diff_id": c.diff_id, "size": c.size,
             "created_by": c.created_by, "added": [path_record(p) for p in c.added],
             "changed": [path_record(p) for p in c.changed], "deleted": [path_record(p) for p in c.deleted],
             "whiteouts": [path_record(p) for p in c.whiteouts],
             "opaque_dirs": [path_record(p) for p in c.opaque_dirs]} for c in changes]  # fmt: skip


def images_analyse(ctx: StepContext) -> None:
    disk = ctx.host.disk()
    inventory = ctx.state.get("disk_inventory") or disk.inventory()
    by_id = {image.id: image for image in inventory.images}
    candidates, read_history = dockerfile.disk_images(disk, inventory)
    sources: list[tuple[str, DiskSource]] = []
    for image_id in _wanted_images(ctx, inventory):
        image = by_id.get(image_id)
        if image is None:
            ctx.warn(f"image {image_id} of a container is not on disk", image=image_id)
            continue
        try:
            sources.append((image_id, DiskSource(disk, image, image_id)))
        except Exception as exc:  # one broken image must not lose the others
            ctx.warn(f"image {image_id} unreadable: {exc}", image=image_id)
    # Images share their lower layers: each layer dir is read once, for the first image.
    cache = analysis.LayerCache(
        i for _, source in sources for i in map(source.identity, source.layer_keys) if i is not None
    )
    for image_id, source in sources:
        base = f"images/{segment(image_id[7:])}"
        try:
            scan = analysis.scan_image(source, cache=cache)
        except Exception as exc:  # one broken image must not lose the others
            ctx.warn(f"image {image_id} unreadable: {exc}", image=image_id)
            continue
        for problem in scan.problems:
            ctx.warn(problem, image=image_id)
        for layer in scan.layers:
            for problem in layer.problems:
                ctx.warn(problem, image=image_id, layer=layer.index)
        ctx.sink.add_json(f"{base}/config.json", scan.config)
        ctx.sink.add_json(f"{base}/history.json", analysis.history(scan))
        rebuilt = dockerfile.reconstruct(
            image_id, image_id, scan.config, source.layers, candidates, read_history
        )
        ctx.sink.add_bytes(f"{base}/Dockerfile", rebuilt.text.encode("utf-8", "surrogateescape"))
        ctx.sink.add_json(f"{base}/dockerfile.json", rebuilt)
        ctx.sink.add_json(f"{base}/layers.json", _changes_record(analysis.layer_changes(scan)))
        ctx.sink.add_json(f"{base}/efficiency.json", analysis.efficiency(scan))
        ctx.sink.add_json(f"{base}/checks.json", scan.checks)
        hits = analysis.search(scan)
        ctx.sink.add_json(f"{base}/search.json", hits)
        for finding in analysis.integrity_findings(scan, ctx.step, (f"{base}/checks.json",)):
            ctx.report(finding)
        for finding in analysis.search_findings(scan, hits, ctx.step, (f"{base}/search.json",)):
            ctx.report(finding)
    ctx.log.event(ctx.step, "info", message="image layers", images=len(sources), layers_read=cache.read,
                  layers_shared=cache.reused)  # fmt: skip
    if isinstance(inventory.driver, NotAvailable):
        ctx.warn(f"no storage driver: {inventory.driver.reason}")


register(Step("images.analyse", Phase.IMAGES, images_analyse, frozenset({Need.DOCKER_DATA}), timeout=1800,
              description="history, Dockerfile, layers, efficiency and secret search of every image a container uses"))  # fmt: skip
