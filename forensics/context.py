"""HostContext: which host we look at (its root, its engine) and how we reach it."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from pathlib import Path

from forensics.errors import EngineUnavailable, UnsafePath
from forensics.host.disk import DockerDisk
from forensics.host.engine import Engine
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable

APPLIANCE_ENV = "FORENSICS_APPLIANCE"
DEFAULT_SOCKET = "/var/run/docker.sock"


def is_appliance() -> bool:
    """True inside the forensic-container image (its Dockerfile sets the variable)."""
    return os.environ.get(APPLIANCE_ENV) == "1"


def default_root() -> Path:
    return Path("/host") if Path("/host").is_dir() else Path("/")


def default_docker_host(root: Path) -> str | NotAvailable:
    """DOCKER_HOST, else the socket under the root, else the local socket.

    For a root other than ``/`` (a mounted disk image), the local socket is NOT used
    unless we are the appliance: the daemon on this machine is not the one that wrote
    that disk, and cross-checking against it would invent findings.
    """
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if is_appliance() and _is_socket(DEFAULT_SOCKET):
        # The responder mounted the socket explicitly: prefer it to the one seen through /host.
        return "unix://" + DEFAULT_SOCKET
    if str(root) != "/":
        try:
            resolved = RootFS(root).resolve("/var/run/docker.sock")
            if resolved.stat is not None and stat.S_ISSOCK(resolved.stat.st_mode):
                return "unix://" + str(root).rstrip("/") + resolved.path.decode("utf-8", "replace")
        except (UnsafePath, OSError):
            pass
        if not is_appliance():
            return NotAvailable(
                f"no docker.sock under {root}, and the local engine is not that host's: "
                "pass --docker-host to use one"
            )
    return "unix://" + DEFAULT_SOCKET


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


@dataclasses.dataclass
class HostContext:
    """What every command works against. Built once by the CLI from its options."""

    root: Path
    """The host's root file system (``/``, ``/host`` in the appliance, or a mounted image)."""
    docker_host: str | NotAvailable
    """Engine API address, or why none is used."""
    no_engine: bool = False
    """Work from disk alone."""
    _engine: Engine | NotAvailable | None = dataclasses.field(default=None, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, root: Path | None, docker_host: str | None, no_engine: bool) -> HostContext:
        real_root = root if root is not None else default_root()
        host: str | NotAvailable = docker_host or default_docker_host(real_root)
        if no_engine:
            host = NotAvailable("--no-engine: working from disk alone")
        return cls(real_root, host, no_engine)

    def engine(self) -> Engine | NotAvailable:
        """The engine, connected once; NotAvailable with the reason when there is none."""
        with self._lock:
            if self._engine is None:
                if isinstance(self.docker_host, NotAvailable):
                    self._engine = self.docker_host
                else:
                    try:
                        self._engine = Engine(self.docker_host)
                    except EngineUnavailable as exc:
                        self._engine = NotAvailable(str(exc))
            return self._engine

    def require_engine(self) -> Engine:
        engine = self.engine()
        if isinstance(engine, NotAvailable):
            raise EngineUnavailable(engine.reason)
        return engine

    def disk(self) -> DockerDisk:
        return DockerDisk(str(self.root))

    def rootfs(self) -> RootFS:
        return RootFS(self.root)

    def live_proc(self) -> Path | NotAvailable:
        """The /proc that shows the analysed host's processes, if it is live."""
        if str(self.root) == "/" or is_appliance():
            return Path("/proc")
        return NotAvailable(f"{self.root} is not the running system: no live processes")
