"""The disk side of a Docker host: ``<root>/var/lib/docker`` read directly.

Nothing here trusts what it reads. Every ID or digest is validated before it becomes
part of a path (CVE-2024-3727 was that mistake), every JSON file is size-bounded, and
every path is resolved through :class:`RootFS`, so a link planted under the docker root
of a mounted disk image cannot lead outside that image. Recoverable trouble is returned
as :class:`DiskProblem` records, never raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from forensics.errors import NoDockerData, UnsafePath
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable

HEX64 = re.compile(r"[0-9a-f]{64}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_JSON = 16 * 1024 * 1024
"""Largest metadata JSON file read; a larger one is recorded as a problem."""
MAX_SMALL = 4096
DEFAULT_DATA_ROOT = "/var/lib/docker"


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and HEX64.fullmatch(value) is not None


def is_digest(value: object) -> bool:
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class DiskProblem:
    """Something on disk that could not be read or made sense of."""

    path: str
    """Path inside the host root."""
    message: str
    """What was wrong."""


@dataclasses.dataclass(frozen=True)
class ContainerState:
    status: str
    """running, paused, restarting, exited, dead or created, from config.v2.json's State."""
    running: bool
    pid: int
    started_at: str
    finished_at: str
    exit_code: int | None


@dataclasses.dataclass(frozen=True)
class DiskContainer:
    """A container as its files under ``containers/<id>/`` describe it."""

    id: str
    name: str
    image_id: str
    """The image ID (``sha256:<hex>``) as recorded; empty when it failed validation."""
    image_ref: str
    """The image reference the container was created from (Config.Image)."""
    created: str
    state: ContainerState
    driver: str
    mount_id: str | NotAvailable
    """Directory name of its writable layer under ``<driver>/``."""
    config_path: str
    hostconfig_path: str | NotAvailable
    config: dict[str, Any]
    """config.v2.json as parsed."""
    hostconfig: dict[str, Any]
    """hostconfig.json as parsed (empty when unreadable)."""


@dataclasses.dataclass(frozen=True)
class DiskImage:
    """An image as its config under ``imagedb/content/sha256/`` describes it."""

    id: str
    """``sha256:<hex>``."""
    repo_tags: list[str]
    repo_digests: list[str]
    created: str
    architecture: str
    os: str
    diff_ids: list[str]
    config_path: str


@dataclasses.dataclass(frozen=True)
class DiskInventory:
    """Everything the disk says, with what could not be read."""

    data_root: str
    """The docker data root inside the host root (normally /var/lib/docker)."""
    driver: str | NotAvailable
    containers: list[DiskContainer]
    images: list[DiskImage]
    problems: list[DiskProblem]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Layer chain IDs as the engine computes them (layerdb/sha256/<chain-id>)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


class DockerDisk:
    """Reads a docker data root below a host root."""

    def __init__(self, root: str) -> None:
        self.host_root = root
        self.fs = RootFS(root)
        self.data_root = self._find_data_root()

    def _find_data_root(self) -> str:
        try:
            raw = self.fs.read_bytes("/etc/docker/daemon.json", MAX_JSON)
            configured = json.loads(raw).get("data-root") or json.loads(raw).get("graph")
            if isinstance(configured, str) and configured.startswith("/"):
                return self.fs.resolve(configured).path.decode("utf-8", "replace")
        except (UnsafePath, ValueError, AttributeError, OSError):
            pass
        return DEFAULT_DATA_ROOT

    def exists(self) -> bool:
        try:
            st = self.fs.resolve(self.data_root).stat
        except (UnsafePath, OSError):
            return False
        return st is not None

    def require(self) -> None:
        if not self.exists():
            raise NoDockerData(f"no docker data at {self.host_root.rstrip('/')}{self.data_root}")

    def path(self, *parts: str) -> str:
        return "/".join([self.data_root.rstrip("/"), *parts])

    def _listdir(self, *parts: str) -> list[str]:
        try:
            return [n.decode("utf-8", "surrogateescape") for n in self.fs.listdir(self.path(*parts))]
        except (UnsafePath, OSError):
            return []

    def read_json(self, path: str, problems: list[DiskProblem]) -> dict[str, Any] | None:
        try:
            value = json.loads(self.fs.read_bytes(path, MAX_JSON))
        except (UnsafePath, OSError) as exc:
            problems.append(DiskProblem(path, str(exc)))
            return None
        except ValueError as exc:
            problems.append(DiskProblem(path, f"not valid JSON: {exc}"))
            return None
        if not isinstance(value, dict):
            problems.append(DiskProblem(path, "JSON is not an object"))
            return None
        return value

    def read_small(self, path: str) -> str | None:
        try:
            return self.fs.read_bytes(path, MAX_SMALL).decode("ascii").strip()
        except (UnsafePath, OSError, UnicodeDecodeError):
            return None

    def has_container(self, container_id: str) -> bool:
        if not is_hex64(container_id):
            return False
        try:
            found = self.fs.resolve(self.path("containers", container_id, "config.v2.json")).stat
        except (UnsafePath, OSError):
            return False
        return found is not None

    def storage_driver(self) -> str | NotAvailable:
        image_dir = self._listdir("image")
        if not image_dir:
            return NotAvailable(f"no {self.data_root}/image directory")
        return "overlay2" if "overlay2" in image_dir else image_dir[0]

    def inventory(self) -> DiskInventory:
        problems: list[DiskProblem] = []
        driver = self.storage_driver()
        repos = self.repositories(driver, problems)
        containers = [c for c in (self._container(n, problems) for n in self._listdir("containers")) if c]
        images = self._images(driver, repos, problems)
        return DiskInventory(self.data_root, driver, containers, images, problems)

    def _container(self, name: str, problems: list[DiskProblem]) -> DiskContainer | None:
        base = self.path("containers", name)
        if not is_hex64(name):
            problems.append(DiskProblem(base, "directory name is not a 64-hex container id: skipped"))
            return None
        config_path = base + "/config.v2.json"
        config = self.read_json(config_path, problems)
        if config is None:
            return None
        if config.get("ID") != name:
            problems.append(
                DiskProblem(config_path, f"ID {str(config.get('ID'))[:80]!r} differs from directory name")
            )
        hostconfig_path = base + "/hostconfig.json"
        hostconfig = self.read_json(hostconfig_path, problems) or {}
        state = config.get("State") if isinstance(config.get("State"), dict) else {}
        assert isinstance(state, dict)
        driver = _str(config.get("Driver"))
        mount_id: str | NotAvailable = NotAvailable("storage driver has no layerdb")
        if driver and re.fullmatch(r"[a-z0-9_-]{1,32}", driver):
            mount_file = self.path("image", driver, "layerdb", "mounts", name, "mount-id")
            raw = self.read_small(mount_file)
            if raw is None:
                mount_id = NotAvailable(f"{mount_file} is unreadable")
            elif is_hex64(raw):
                mount_id = raw
            else:
                problems.append(DiskProblem(mount_file, "mount-id is not 64 hex digits: ignored"))
                mount_id = NotAvailable("mount-id failed validation")
        image_id = _str(config.get("Image"))
        if image_id and not is_digest(image_id):
            problems.append(DiskProblem(config_path, f"Image {image_id[:80]!r} is not a sha256 digest"))
            image_id = ""
        cfg = config.get("Config") if isinstance(config.get("Config"), dict) else {}
        assert isinstance(cfg, dict)
        return DiskContainer(
            id=name,
            name=_str(config.get("Name")).lstrip("/"),
            image_id=image_id,
            image_ref=_str(cfg.get("Image")),
            created=_str(config.get("Created")),
            state=_state(state),
            driver=driver,
            mount_id=mount_id,
            config_path=config_path,
            hostconfig_path=hostconfig_path if hostconfig else NotAvailable("unreadable"),
            config=config,
            hostconfig=hostconfig,
        )

    def repositories(self, driver: str | NotAvailable, problems: list[DiskProblem]) -> dict[str, list[str]]:
        """image ID -> names (``repo:tag`` and ``repo@digest``) from repositories.json."""
        if isinstance(driver, NotAvailable):
            return {}
        path = self.path("image", driver, "repositories.json")
        data = self.read_json(path, problems) or {}
        names: dict[str, list[str]] = {}
        repos = data.get("Repositories")
        if not isinstance(repos, dict):
            return names
        for refs in repos.values():
            if not isinstance(refs, dict):
                continue
            for ref, image_id in refs.items():
                if is_digest(image_id) and isinstance(ref, str):
                    names.setdefault(image_id, []).append(ref)
        return names

    def _images(
        self, driver: str | NotAvailable, repos: dict[str, list[str]], problems: list[DiskProblem]
    ) -> list[DiskImage]:
        if isinstance(driver, NotAvailable):
            return []
        images = []
        for name in self._listdir("image", driver, "imagedb", "content", "sha256"):
            path = self.path("image", driver, "imagedb", "content", "sha256", name)
            if not is_hex64(name):
                problems.append(DiskProblem(path, "not a 64-hex image id: skipped"))
                continue
            config = self.read_json(path, problems)
            if config is None:
                continue
            rootfs = config.get("rootfs") if isinstance(config.get("rootfs"), dict) else {}
            assert isinstance(rootfs, dict)
            diff_ids = [d for d in rootfs.get("diff_ids") or [] if is_digest(d)]
            image_id = "sha256:" + name
            refs = sorted(repos.get(image_id, []))
            images.append(
                DiskImage(
                    id=image_id,
                    repo_tags=[r for r in refs if "@" not in r],
                    repo_digests=[r for r in refs if "@" in r],
                    created=_str(config.get("created")),
                    architecture=_str(config.get("architecture")),
                    os=_str(config.get("os")),
                    diff_ids=diff_ids,
                    config_path=path,
                )
            )
        return images

    def layer_dirs(self, diff_ids: list[str], driver: str = "overlay2") -> list[str | NotAvailable]:
        """For each layer (lowest first), its ``diff`` directory inside the host root."""
        out: list[str | NotAvailable] = []
        for chain in chain_ids(diff_ids):
            cache = self.read_small(self.path("image", driver, "layerdb", "sha256", chain[7:], "cache-id"))
            if cache is None or not is_hex64(cache):
                out.append(NotAvailable(f"layer {chain} has no valid cache-id"))
            else:
                out.append(self.path(driver, cache, "diff"))
        return out

    def upper_dir(self, container: DiskContainer) -> str | NotAvailable:
        if isinstance(container.mount_id, NotAvailable):
            return container.mount_id
        return self.path(container.driver, container.mount_id, "diff")


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _state(state: dict[str, Any]) -> ContainerState:
    running = state.get("Running") is True
    if state.get("Dead") is True:
        status = "dead"
    elif state.get("Restarting") is True:
        status = "restarting"
    elif state.get("Paused") is True and running:
        status = "paused"
    elif running:
        status = "running"
    elif _str(state.get("StartedAt")).startswith("0001-") or not state.get("StartedAt"):
        status = "created"
    else:
        status = "exited"
    pid = state.get("Pid")
    code = state.get("ExitCode")
    return ContainerState(
        status=status,
        running=running,
        pid=pid if isinstance(pid, int) else 0,
        started_at=_str(state.get("StartedAt")),
        finished_at=_str(state.get("FinishedAt")),
        exit_code=code if isinstance(code, int) else None,
    )
