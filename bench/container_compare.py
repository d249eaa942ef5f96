"""Benchmark: `container compare` of N changed files against the manual way.

    python bench/container_compare.py [--files 100]

A debian:bookworm-slim container appends a line to N text files of its image. The manual
way a responder would take: start a fresh container of the image, `docker cp` each file
out of both containers, `diff -u` each pair. Ours: find the container on disk and compare
each file with the image's from the layers (in one process, as the triage's
containers.compare step does); no container is started, nothing is copied. Both sides
must find the same N files changed. Removes its containers and files at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LABEL, Row, client, remove_container, run, scratch_dir, wait_log
from forensics.containers.compare import compare
from forensics.containers.layers import container_layers, resolve_container
from forensics.host.disk import DockerDisk

IMAGE = "debian:bookworm-slim"
SCRIPT = """
find /usr/share/doc /usr/share/common-licenses /etc -type f ! -name hosts ! -name hostname \
  ! -name resolv.conf ! -name shadow ! -name gshadow | sort | head -{n} > /tmp/bench-list
while read f; do echo "tampered by the benchmark" >> "$f"; done < /tmp/bench-list
echo LIST-BEGIN; cat /tmp/bench-list; echo LIST-END
echo READY
exec sleep 3600
"""


def ours(container_id: str, paths: list[str]) -> int:
    """Files our compare finds changed (content differs)."""
    disk = DockerDisk("/")
    inventory = disk.inventory()
    found = resolve_container(inventory, container_id)
    layers = container_layers(disk, inventory, found)
    changed = 0
    for path in paths:
        result = compare(found, layers, "/", path)
        changed += result.status == "changed" and result.content == "differs"
    return changed


def manual(victim: str, paths: list[str], work: Path) -> tuple[int, float]:
    """Fresh container, docker cp both sides, diff. Returns (files that differ, seconds the
    fresh container took to start)."""
    start = time.perf_counter()
    fresh = run(["docker", "run", "-d", "--label", LABEL, IMAGE, "sleep", "3600"]).stdout.decode().strip()
    started = time.perf_counter() - start
    try:
        differ = 0
        for i, path in enumerate(paths):
            a, b = work / f"{i}.image", work / f"{i}.now"
            run(["docker", "cp", f"{fresh}:{path}", str(a)])
            run(["docker", "cp", f"{victim}:{path}", str(b)])
            differ += run(["diff", "-u", str(a), str(b)], check=False).returncode == 1
        return differ, started
    finally:
        run(["docker", "rm", "-f", "-v", fresh], check=False)


def rows(files: int = 100) -> list[Row]:
    cli = client()
    victim = cli.containers.run(IMAGE, ["sh", "-c", SCRIPT.format(n=files)], detach=True, labels={LABEL: "1"})
    try:
        wait_log(victim, b"READY")
        log = victim.logs().decode()
        paths = log.split("LIST-BEGIN\n", 1)[1].split("LIST-END", 1)[0].split()
        with scratch_dir("bench-compare-") as work:
            start = time.perf_counter()
            theirs, fresh_start = manual(victim.id, paths, work)
            manual_s = time.perf_counter() - start
        start = time.perf_counter()
        mine = ours(victim.id, paths)
        ours_s = time.perf_counter() - start
    finally:
        remove_container(victim)
        cli.close()
    speedup = manual_s / ours_s
    note = (f"{len(paths)} files; differ: {mine} (ours), {theirs} (manual); the manual way started "
            f"a container ({fresh_start:.2f} s) and ran {2 * len(paths)} docker cp; ours started none")  # fmt: skip
    return [Row("container compare vs docker cp + diff", f"{len(paths)} changed files", f"{ours_s:.2f} s",
                f"{manual_s:.2f} s", speedup, ">= 10x faster", speedup >= 10, note)]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    for row in rows(args.files):
        print(f"{row.case}: ours {row.ours}, manual {row.theirs}, {row.ratio:.1f}x faster; {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
