"""The docker SDK's low-level client, made read-only; imported only when an engine is contacted.

``ReadOnlyAPIClient`` refuses every HTTP method but GET and HEAD at the one place all
requests of the docker SDK pass through (``requests.Session.request``), so no code path,
ours or the SDK's, can exec, start, pause or change anything. Each call is also recorded,
so the acquisition log can show what the daemon was asked.

It lives apart from :mod:`forensics.host.engine` because importing the docker SDK (and
requests, urllib3, ...) costs about 0.2 s, which every command would otherwise pay at start,
even those that never ask the daemon anything.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker

from forensics.errors import ReadOnlyViolation
from forensics.host.engine import ALLOWED_METHODS, ApiCall


class ReadOnlyAPIClient(docker.APIClient):
    """A docker low-level client that can only read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[ApiCall] = []
        self._calls_lock = threading.Lock()
        super().__init__(*args, **kwargs)
        # The daemon is asked directly: no proxy or .netrc from the environment (their
        # lookup cost ~1 ms a request, and a socket on this host needs neither).
        self.trust_env = False

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
