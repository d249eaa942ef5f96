"""The Engine API, read-only.

``ReadOnlyAPIClient`` refuses every HTTP method but GET and HEAD at the one place all
requests of the docker SDK pass through (``requests.Session.request``), so no code path,
ours or the SDK's, can exec, start, pause or change anything. Each call is also recorded,
so the acquisition log can show what the daemon was asked.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import docker
import requests

from forensics.errors import EngineUnavailable, ReadOnlyViolation

ALLOWED_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class ApiCall:
    """One request the daemon was sent."""

    method: str
    url: str
    status: int | None
    seconds: float


class ReadOnlyAPIClient(docker.APIClient):
    """A docker low-level client that can only read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[ApiCall] = []
        self._calls_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        verb = method.decode() if isinstance(method, bytes) else method
        if verb.upper() not in ALLOWED_METHODS:
            raise ReadOnlyViolation(f"refused {verb} {url!r}: the Engine API is used read-only")
        started = time.monotonic()
        status = None
        try:
            response = super().request(method, url, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            call = ApiCall(verb.upper(), str(url), status, time.monotonic() - started)
            with self._calls_lock:
                self.calls.append(call)


class Engine:
    """The read calls the product makes, each returning the daemon's JSON as it came."""

    def __init__(self, base_url: str, timeout: int = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url
        try:
            self.api = ReadOnlyAPIClient(base_url=base_url, version="auto", timeout=timeout)
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(f"no Docker engine answers at {base_url}: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise EngineUnavailable(f"no Docker engine answers at {base_url}: {_short(exc)}") from exc

    @property
    def calls(self) -> list[ApiCall]:
        return list(self.api.calls)

    def version(self) -> dict[str, Any]:
        return dict(self.api.version())

    def info(self) -> dict[str, Any]:
        return dict(self.api.info())

    def containers(self) -> list[dict[str, Any]]:
        return list(self.api.containers(all=True))

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return dict(self.api.inspect_container(container_id))

    def images(self) -> list[dict[str, Any]]:
        return list(self.api.images(all=True))

    def inspect_image(self, image: str) -> dict[str, Any]:
        return dict(self.api.inspect_image(image))

    def image_history(self, image: str) -> list[dict[str, Any]]:
        return list(self.api.history(image))

    def networks(self) -> list[dict[str, Any]]:
        return list(self.api.networks())

    def inspect_network(self, network_id: str) -> dict[str, Any]:
        return dict(self.api.inspect_network(network_id))

    def volumes(self) -> list[dict[str, Any]]:
        return list((self.api.volumes() or {}).get("Volumes") or [])

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return dict(self.api.inspect_volume(name))

    def knows_container(self, container_id: str) -> bool | None:
        """Whether the daemon knows the container now; None when it could not say."""
        try:
            self.api.inspect_container(container_id)
            return True
        except docker.errors.NotFound:
            return False
        except (docker.errors.APIError, requests.RequestException):
            return None

    def container_changes(self, container_id: str) -> list[dict[str, Any]]:
        return list(self.api.diff(container_id) or [])

    def container_top(self, container_id: str) -> dict[str, Any]:
        return dict(self.api.top(container_id))

    def container_logs(self, container_id: str, max_bytes: int) -> bytes:
        """The API's view of a container's logs, bounded."""
        # follow=False: with stream=True the SDK would otherwise follow a running container forever.
        stream = self.api.logs(
            container_id, stdout=True, stderr=True, timestamps=True, stream=True, follow=False
        )
        out = bytearray()
        for chunk in stream:
            out += chunk
            if len(out) >= max_bytes:
                break
        return bytes(out[:max_bytes])


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
