"""How other steps hand executables to the binary triage (``binary.triage``).

A step that finds a file worth a static triage appends a :class:`BinaryCandidate` to
``ctx.state.setdefault(CANDIDATES, [])``. It must run in a phase before ``Phase.SCANS``
(the binary step's phase): processes, file systems and images all do. A candidate says
where the bytes are, never the bytes themselves:

* inside a container or image root: ``BinaryCandidate(source=..., subject=..., reason=...,
  path=b"/usr/bin/x", root=<host path of the layer or root directory>)``; the file is
  opened through :class:`~forensics.host.rootfs.RootFS` (links resolved inside that root,
  only regular files opened);
* on the host: ``root=None, path="/proc/<pid>/exe"`` (or another host path our own code
  chose, never one a suspect named). ``/proc/<pid>/exe`` works while the process lives,
  even when its file was deleted; once the process has exited, the candidate becomes a
  warning in the acquisition log.

``subject`` is the Finding subject (``container:<id>``, ``image:<id>``,
``process:<pid>``); ``source`` says in words where it was found; ``reason`` why the
producer flagged it. This module registers nothing: import it freely.
"""

from __future__ import annotations

import dataclasses

CANDIDATES = "binary_candidates"
"""The ``ctx.state`` key other steps append :class:`BinaryCandidate` records to."""


@dataclasses.dataclass(frozen=True)
class BinaryCandidate:
    """A file another step wants triaged."""

    source: str
    """Where it was found, in words (``container web (3f2a…): A /tmp/x``)."""
    subject: str
    """The Finding subject: ``container:<id>``, ``image:<id>``, ``process:<pid>``."""
    reason: str
    """Why the producer flagged it."""
    path: bytes | str
    """The path inside ``root``, or a host path when ``root`` is None."""
    root: str | None = None
    """Host path of the container/image root (or layer directory) the path lives in."""
