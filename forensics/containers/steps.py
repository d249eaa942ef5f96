"""Triage steps about containers.

After ``containers.list``, each step works container by container (``--containers``
narrows them; the appliance's own container is left out), and one container's failure is
a warning, not the end of the step. Evidence goes under ``containers/<id>/``:
``diff.json``, ``files/...`` with ``files.json``, ``compare/<path>.json`` (and ``.diff``),
``inspect.json``, ``<id>-json.log`` and ``api-logs.txt``.
"""

from __future__ import annotations

from typing import Any

from forensics.containers import yarascan
from forensics.containers.accounts import is_account_file
from forensics.containers.compare import comparison_record
from forensics.containers.diff import ContainerDiff, DiffOptions, analyse, diff_record
from forensics.containers.extract import MAX_FILE, archive_name, extract_changed, extraction_record
from forensics.containers.layers import container_layers, resolve_container
from forensics.containers.listing import merge, recheck
from forensics.errors import ForensicsError, NotFound, UnsafePath
from forensics.findings import Finding, Severity
from forensics.host.disk import DiskContainer, DiskInventory, is_hex64
from forensics.records import NotAvailable
from forensics.steps import Need, Phase, Step, StepContext, register

MAX_COMPARES = 5000
"""Changed files compared per container."""
MAX_LOG = 64 * 1024 * 1024
"""Bytes of a container's log kept, from disk and from the API each."""
INSPECT_FIELDS = (
    ("Config", "Image"), ("Config", "Cmd"), ("Config", "Entrypoint"), ("Config", "Env"), ("Config", "User"),
    ("HostConfig", "Privileged"), ("HostConfig", "CapAdd"), ("HostConfig", "Binds"), ("HostConfig", "PidMode"),
    ("HostConfig", "NetworkMode"), ("HostConfig", "IpcMode"), ("HostConfig", "SecurityOpt"),
    ("HostConfig", "Devices"),
)  # fmt: skip
"""Settings fixed at creation: the disk and the daemon must agree on them."""


def containers_list(ctx: StepContext) -> None:
    # Read the disk here if disk.inventory has not run yet: the order of steps within a
    # phase follows the order their modules were imported in.
    disk = _inventory(ctx).containers
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


# ---- per container ----------------------------------------------------------------------


def _inventory(ctx: StepContext) -> DiskInventory:
    inventory = ctx.state.get("disk_inventory")
    if inventory is None:
        inventory = ctx.host.disk().inventory()
        ctx.state["disk_inventory"] = inventory
    return inventory


def selected(ctx: StepContext) -> list[DiskContainer]:
    """The containers to look at: --containers (or all), less our own."""
    inventory = _inventory(ctx)
    chosen: dict[str, DiskContainer] = {}
    if ctx.options.containers:
        for ref in ctx.options.containers:
            try:
                found = resolve_container(inventory, ref)
                chosen[found.id] = found
            except NotFound as exc:
                ctx.warn(f"--containers {ref!r}: {exc}")
    else:
        chosen = {c.id: c for c in inventory.containers}
    me = ctx.state.get("self")
    own = getattr(me, "container_id", None)
    return [c for cid, c in sorted(chosen.items()) if cid != own]


def _isolated(ctx: StepContext, what: str, container: DiskContainer, job: Any) -> Any:
    try:
        return job()
    except (ForensicsError, OSError, ValueError, KeyError) as exc:
        ctx.warn(f"{what} of container {container.id[:12]} failed: {exc}", container=container.id)
    except Exception as exc:  # an unexpected bug on one hostile container must not cost the others
        ctx.warn(f"{what} of container {container.id[:12]} failed: {type(exc).__name__}: {exc}",
                 container=container.id)  # fmt: skip
    return None


def containers_diff(ctx: StepContext) -> None:
    disk = ctx.host.disk()
    inventory = _inventory(ctx)
    diffs: dict[str, ContainerDiff] = {}
    ctx.state["container_diffs"] = diffs
    engine = ctx.host.engine()
    with yarascan.prepared(str(ctx.host.root)) as rules:  # compiled once for every container
        for container in selected(ctx):
            base = f"containers/{container.id}"

            def job(container: DiskContainer = container, base: str = base) -> ContainerDiff:
                layers = container_layers(disk, inventory, container)
                options = DiffOptions(engine=engine, evidence=f"{base}/diff.json", yara_rules=rules)
                return analyse(container, layers, str(ctx.host.root), options)

            diff = _isolated(ctx, "diff", container, job)
            if diff is None:
                continue
            diffs[container.id] = diff
            ctx.sink.add_json(f"{base}/diff.json", diff_record(diff))
            for problem in diff.problems:
                ctx.warn(f"container {container.id[:12]}: {problem}", container=container.id)
            if diff.yara.status == "skipped":
                ctx.warn(
                    f"container {container.id[:12]}: yara skipped: {diff.yara.reason}", container=container.id
                )
            for finding in diff.findings:
                ctx.report(finding)


def containers_extract(ctx: StepContext) -> None:
    diffs: dict[str, ContainerDiff] = ctx.state.get("container_diffs") or {}
    for cid, diff in sorted(diffs.items()):
        base = f"containers/{cid}"

        def job(diff: ContainerDiff = diff, base: str = base, cid: str = cid) -> None:
            extraction = extract_changed(ctx.sink, f"{base}/files", diff, str(ctx.host.root), MAX_FILE)
            ctx.sink.add_json(f"{base}/files.json", extraction_record(extraction))
            for problem in extraction.problems:
                ctx.warn(f"container {cid[:12]}: {problem}", container=cid)

        _isolated(ctx, "extraction", _container_of(ctx, cid), job)


def _container_of(ctx: StepContext, cid: str) -> DiskContainer:
    for container in _inventory(ctx).containers:
        if container.id == cid:
            return container
    raise KeyError(cid)


def containers_compare(ctx: StepContext) -> None:
    from forensics.containers.compare import compare

    diffs: dict[str, ContainerDiff] = ctx.state.get("container_diffs") or {}
    for cid, diff in sorted(diffs.items()):
        container = _container_of(ctx, cid)
        wanted = [
            e.path for e in diff.entries
            if e.current is not None and e.current.file_type == "file"
            and (e.kind == "C" or is_account_file(e.path.decode("utf-8", "replace")))
        ]  # fmt: skip
        if len(wanted) > MAX_COMPARES:
            ctx.warn(
                f"container {cid[:12]}: {len(wanted)} changed files, only the first {MAX_COMPARES} compared"
            )
        for path in wanted[:MAX_COMPARES]:
            name = archive_name(f"containers/{cid}/compare", path)

            def job(
                path: bytes = path, name: str = name, container: DiskContainer = container,
                diff: ContainerDiff = diff,
            ) -> None:  # fmt: skip
                result = compare(container, diff.layers, str(ctx.host.root), path, evidence=f"{name}.json")
                ctx.sink.add_json(f"{name}.json", comparison_record(result))
                if isinstance(result.text_diff, str) and result.text_diff:
                    ctx.sink.add_bytes(f"{name}.diff", result.text_diff.encode("utf-8", "backslashreplace"))
                for finding in result.findings:
                    ctx.report(finding)

            _isolated(ctx, f"comparison of {path[:200]!r}", container, job)


def _field(record: dict[str, Any], section: str, key: str) -> Any:
    part = record.get(section)
    return part.get(key) if isinstance(part, dict) else None


def inspect_differences(
    disk_config: dict[str, Any], hostconfig: dict[str, Any], api: dict[str, Any]
) -> list[str]:
    """Creation-time settings on which the disk and the daemon disagree."""
    on_disk = {"Config": disk_config.get("Config") or {}, "HostConfig": hostconfig}
    out = []
    for section, key in INSPECT_FIELDS:
        left, right = _field(on_disk, section, key), _field(api, section, key)
        if (left or None) != (right or None):
            out.append(f"{section}.{key}: disk {str(left)[:200]!r}, API {str(right)[:200]!r}")
    return out


def containers_inspect(ctx: StepContext) -> None:
    engine = ctx.host.engine()
    for container in selected(ctx):
        base = f"containers/{container.id}"

        def job(container: DiskContainer = container, base: str = base) -> None:
            api: dict[str, Any] | NotAvailable
            if isinstance(engine, NotAvailable):
                api = engine
            else:
                try:
                    api = engine.inspect_container(container.id)
                except Exception as exc:  # the daemon may not know it: that is the finding
                    api = NotAvailable(f"the Engine API could not inspect it: {exc}")
            differences = [] if isinstance(api, NotAvailable) else inspect_differences(
                container.config, container.hostconfig, api)  # fmt: skip
            ctx.sink.add_json(f"{base}/inspect.json", {
                "disk": {"config.v2.json": container.config, "hostconfig.json": container.hostconfig},
                "api": api, "differences": differences,
            })  # fmt: skip
            if differences:
                ctx.report(Finding(
                    rule="container.inspect-mismatch", severity=Severity.HIGH,
                    title=f"{container.name or container.id[:12]}: the disk and the Engine API disagree on "
                          f"{len(differences)} creation-time setting(s)",
                    subject=f"container:{container.id}", source=ctx.step, evidence=(f"{base}/inspect.json",),
                    details="\n".join(differences),
                ))  # fmt: skip

        _isolated(ctx, "inspect", container, job)


def containers_logs(ctx: StepContext) -> None:
    disk = ctx.host.disk()
    fs = ctx.host.rootfs()
    engine = ctx.host.engine()
    for container in selected(ctx):
        base = f"containers/{container.id}"
        expected = disk.path("containers", container.id, f"{container.id}-json.log")

        def from_disk(
            container: DiskContainer = container, base: str = base, expected: str = expected
        ) -> None:
            recorded = container.config.get("LogPath")
            if recorded and recorded != expected:
                ctx.warn(f"container {container.id[:12]}: LogPath {str(recorded)[:200]!r} is not where docker "
                         f"keeps logs; only {expected} is read", container=container.id)  # fmt: skip
            if not is_hex64(container.id):
                return
            try:
                with fs.open_regular(expected, follow=False) as (fd, st):
                    written = ctx.sink.add_fd(f"{base}/{container.id}-json.log", fd, limit=MAX_LOG)
            except UnsafePath as exc:
                ctx.warn(
                    f"container {container.id[:12]}: no json-file log on disk: {exc}", container=container.id
                )
                return
            if written.truncated:
                ctx.warn(f"container {container.id[:12]}: log is {st.st_size} bytes; first {MAX_LOG} kept",
                         container=container.id)  # fmt: skip

        _isolated(ctx, "log copy", container, from_disk)
        if isinstance(engine, NotAvailable):
            continue

        def from_api(container: DiskContainer = container, base: str = base) -> None:
            # follow=False spelled out: docker-py follows a streamed log by default, which
            # never ends for a running container (Engine.container_logs does not say it).
            stream = engine.api.logs(container.id, stdout=True, stderr=True, timestamps=True, stream=True,
                                     follow=False)  # fmt: skip
            ctx.sink.add_stream(f"{base}/api-logs.txt", stream, limit=MAX_LOG)

        _isolated(ctx, "API logs", container, from_api)


def containers_runtime(ctx: StepContext) -> None:
    from forensics.containers.runtime import runtime_of

    listing = ctx.state.get("processes")
    if listing is None:
        proc = ctx.host.live_proc()
        reason = proc.reason if isinstance(proc, NotAvailable) else "the process listing did not run"
        listing = NotAvailable(reason)
    engine = ctx.host.engine()
    for container in selected(ctx):
        base = f"containers/{container.id}"

        def job(container: DiskContainer = container, base: str = base) -> None:
            api: dict[str, Any] | NotAvailable = (
                engine if isinstance(engine, NotAvailable) else NotAvailable("")
            )
            if not isinstance(engine, NotAvailable):
                try:
                    api = engine.inspect_container(container.id)
                except Exception as exc:  # the daemon not knowing it is recorded, not fatal
                    api = NotAvailable(f"the Engine API could not inspect it: {exc}")
            ctx.sink.add_json(f"{base}/runtime.json", runtime_of(container, listing, api, ctx.host.disk()))

        _isolated(ctx, "runtime view", container, job)


LISTED = ("disk.inventory", "containers.list")
"""What the per-container steps need first: the containers, from the API and the disk (the
steps of this phase run side by side once these ended; extract and compare need the diff)."""

register(Step("containers.list", Phase.FILESYSTEMS, containers_list, frozenset({Need.DOCKER_DATA}),
              timeout=60, description="containers from the API and the disk, cross-checked"))  # fmt: skip
register(Step("containers.inspect", Phase.FILESYSTEMS, containers_inspect, frozenset({Need.DOCKER_DATA}),
              timeout=300, after=LISTED, description="each container's config from disk and from the API, side by side"))  # fmt: skip
register(Step("containers.logs", Phase.FILESYSTEMS, containers_logs, frozenset({Need.DOCKER_DATA}),
              timeout=900, after=LISTED, description="each container's json-file log from disk, and the API's logs (bounded)"))  # fmt: skip
register(Step("containers.runtime", Phase.FILESYSTEMS, containers_runtime, frozenset({Need.DOCKER_DATA}),
              timeout=300, after=LISTED, description="each container's processes, sockets, mounts and networks"))  # fmt: skip
register(Step("containers.diff", Phase.FILESYSTEMS, containers_diff, frozenset({Need.DOCKER_DATA}),
              timeout=3600, after=LISTED, description="each container's changes from its writable layer, rules and YARA"))  # fmt: skip
register(Step("containers.extract", Phase.FILESYSTEMS, containers_extract, frozenset({Need.DOCKER_DATA}),
              timeout=3600, after=("containers.diff",), description="every added and changed file copied from the writable layer"))  # fmt: skip
register(Step("containers.compare", Phase.FILESYSTEMS, containers_compare, frozenset({Need.DOCKER_DATA}),
              timeout=1800, after=("containers.diff",), description="every changed file against its original in the image"))  # fmt: skip
