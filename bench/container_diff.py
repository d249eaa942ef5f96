"""Benchmark: `container diff` from disk against the engine's `docker diff`, as ratios.

    python bench/container_diff.py [--files 20000] [--image forensics-test/busybox:latest]

Starts one container that writes N files (and deletes, changes and replaces a directory),
then times, in one run: the Engine API's GET /containers/{id}/changes, our change list
alone (overlay walk), and our whole diff (hashes, rules; YARA off and on). Prints seconds
and each ratio to the engine's time. Not a test: nothing is asserted but equality of the
change sets. Needs root and a local engine; removes its container at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import docker

from forensics.containers.diff import DiffOptions, analyse
from forensics.containers.layers import container_layers, host_path, resolve_container
from forensics.containers.overlay import compute_changes
from forensics.host.disk import DockerDisk

SCRIPT = """
mkdir -p /data && cd /data
i=0
while [ $i -lt {n} ]; do
  d=d$((i / 1000)); [ -d $d ] || mkdir $d
  echo "file $i" > $d/f$i
  i=$((i + 1))
done
rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/x
echo changed >> /etc/passwd
rm /etc/group
echo READY
exec sleep 3600
"""


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--image", default="forensics-test/busybox:latest")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    container = client.containers.run(args.image, ["sh", "-c", SCRIPT.format(n=args.files)], detach=True)
    try:
        deadline = time.monotonic() + 900
        while b"READY" not in container.logs():
            if time.monotonic() > deadline:
                print("the container did not get ready", file=sys.stderr)
                return 1
            time.sleep(0.5)
        disk = DockerDisk("/")
        inventory = disk.inventory()
        found = resolve_container(inventory, container.id)
        layers = container_layers(disk, inventory, found)
        upper = host_path("/", layers.upper)
        lowers = [host_path("/", layer.path) for layer in layers.lowers]
        kinds = {0: "C", 1: "A", 2: "D"}
        engine_s, engine = timed(lambda: client.api.diff(container.id), args.repeat)
        walk_s, ours = timed(lambda: compute_changes(upper, lowers), args.repeat)
        full_s, _ = timed(lambda: analyse(found, layers, "/", DiffOptions(yara=False)), args.repeat)
        yara_s, _ = timed(lambda: analyse(found, layers, "/", DiffOptions(yara=True)), 1)
        theirs = {(kinds[c["Kind"]], c["Path"]) for c in engine}  # type: ignore[union-attr]
        mine = {(c.kind, c.path.decode()) for c in ours.changes}  # type: ignore[attr-defined]
        print(f"changes: {len(theirs)} (engine) {len(mine)} (disk); equal: {theirs == mine}")
        print(f"engine GET /changes          {engine_s:8.3f} s   1.00")
        for label, seconds in (("disk: change list", walk_s), ("disk: diff, hashes, rules", full_s),
                               ("disk: diff + YARA", yara_s)):  # fmt: skip
            print(f"{label:28} {seconds:8.3f} s   {seconds / engine_s:.2f}")
        return 0 if theirs == mine else 1
    finally:
        container.remove(force=True)
        client.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
