"""``container list``: the Engine API's view and the disk's, merged and cross-checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from forensics.findings import Finding, Severity
from forensics.host.disk import DiskContainer, is_hex64
from forensics.records import NotAvailable


@dataclasses.dataclass(frozen=True)
class ContainerEntry:
    """One container, from one side or both."""

    id: str
    name: str
    image: str
    """The image reference it was created from."""
    image_id: str
    state: str
    """State as the API reports it, else as the disk records it."""
    state_disk: str | NotAvailable
    created: str
    started: str
    driver: str
    source: str
    """``api``, ``disk`` or ``both``: who knows this container."""


def merge(
    api: list[dict[str, Any]] | NotAvailable, disk: list[DiskContainer]
) -> tuple[list[ContainerEntry], list[Finding]]:
    """Join both views by id. A container one side shows and the other does not is a finding,
    unless the API was unavailable (then every container is simply ``disk``)."""
    by_disk = {c.id: c for c in disk}
    entries: list[ContainerEntry] = []
    findings: list[Finding] = []
    api_ids: set[str] = set()
    for item in [] if isinstance(api, NotAvailable) else api:
        cid = str(item.get("Id", ""))
        if not is_hex64(cid):
            continue
        api_ids.add(cid)
        names = item.get("Names") or []
        name = str(names[0]).lstrip("/") if names else ""
        on_disk = by_disk.get(cid)
        entries.append(
            ContainerEntry(
                id=cid,
                name=name,
                image=str(item.get("Image", "")),
                image_id=str(item.get("ImageID", "")),
                state=str(item.get("State", "")),
                state_disk=on_disk.state.status if on_disk else NotAvailable("not on disk"),
                created=on_disk.created if on_disk else str(item.get("Created", "")),
                started=on_disk.state.started_at if on_disk else "",
                driver=on_disk.driver if on_disk else "",
                source="both" if on_disk else "api",
            )
        )
        if on_disk is None:
            findings.append(
                Finding(
                    rule="inventory.api-only-container",
                    severity=Severity.HIGH,
                    title=f"container {name or cid[:12]} is listed by the Engine API but has no files on disk",
                    subject=f"container:{cid}",
                    source="containers.list",
                    details="The daemon reports a container whose state directory is missing: the disk "
                    "was altered, or the daemon is not the one whose data root was read.",
                )
            )
    for cid, container in sorted(by_disk.items()):
        if cid in api_ids:
            continue
        entries.append(
            ContainerEntry(
                id=cid,
                name=container.name,
                image=container.image_ref,
                image_id=container.image_id,
                state=container.state.status,
                state_disk=container.state.status,
                created=container.created,
                started=container.state.started_at,
                driver=container.driver,
                source="disk",
            )
        )
        if not isinstance(api, NotAvailable):
            findings.append(
                Finding(
                    rule="inventory.hidden-container",
                    severity=Severity.HIGH,
                    title=f"container {container.name or cid[:12]} exists on disk but the Engine API does not list it",
                    subject=f"container:{cid}",
                    source="containers.list",
                    details="A container whose files exist under the docker data root is missing from "
                    "the daemon's answer: a tampered daemon or a hidden container.",
                )
            )
    entries.sort(key=lambda e: (e.name, e.id))
    return entries, findings


def recheck(
    findings: list[Finding], api_knows: Callable[[str], bool | None], disk_knows: Callable[[str], bool]
) -> list[Finding]:
    """Ask both sides again about each mismatch before calling it one.

    A container created or removed while the triage ran shows on one side only, through
    no fault of the host: when the second look agrees, the finding becomes an INFO note
    that the container changed during collection.
    """
    out = []
    for finding in findings:
        cid = finding.subject.removeprefix("container:")
        now_api, now_disk = api_knows(cid), disk_knows(cid)
        if finding.rule == "inventory.api-only-container" and now_api is False and not now_disk:
            change = "was removed while the triage ran"
        elif finding.rule == "inventory.hidden-container" and now_api is True and now_disk:
            change = "was created while the triage ran"
        elif finding.rule == "inventory.hidden-container" and not now_disk:
            change = "was removed while the triage ran"
        else:
            out.append(finding)
            continue
        out.append(
            dataclasses.replace(
                finding,
                rule="inventory.changed-during-triage",
                severity=Severity.INFO,
                title=f"container {cid[:12]} {change}",
                details=f"First seen as: {finding.title}",
            )
        )
    return out
