"""The Engine API, read-only.

Every request goes through :class:`forensics.host.engine_client.ReadOnlyAPIClient`, which
refuses every HTTP method but GET and HEAD before anything is sent and records each call,
so the acquisition log can show what the daemon was asked. The docker SDK is imported
only when an :class:`Engine` is built: importing this module costs nothing.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from forensics.errors import EngineUnavailable

ALLOWED_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_TIMEOUT = 30
ASKING_AT_ONCE = 4
"""Requests :meth:`Engine.each` keeps in flight: the daemon answers them side by side (an
inspect or a ``top`` is mostly the daemon's time, 6-30 ms each), within its client's pool."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ApiCall:
    """One request the daemon was sent."""

    method: str
    url: str
    status: int | None
    seconds: float


class Engine:
    """The read calls the product makes, each returning the daemon's JSON as it came."""

    def __init__(self, base_url: str, timeout: int = DEFAULT_TIMEOUT) -> None:
        import docker
        import requests

        from forensics.host.engine_client import ReadOnlyAPIClient

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

    def each(self, ask: Callable[[str], T], keys: Sequence[str]) -> list[T | Exception]:
        """``ask(key)`` for every key, a few at once, answers in the keys' order; a call that
        failed gives its exception in its place (one object gone must not lose the rest)."""

        def one(key: str) -> T | Exception:
            try:
                return ask(key)
            except Exception as exc:
                return exc

        if len(keys) < 2:
            return [one(key) for key in keys]
        with concurrent.futures.ThreadPoolExecutor(ASKING_AT_ONCE, thread_name_prefix="engine") as pool:
            return list(pool.map(one, keys))

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
        import docker
        import requests

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
