"""Benchmark: `container diff` from disk against the engine's `docker diff`, as ratios.

    python bench/container_diff.py [--files 20000] [--image forensics-test/busybox:latest]

Starts one container that writes N files (and deletes, changes and replaces a directory),
then times, in one run: the Engine API's GET /containers/{id}/changes, our change list
alone (overlay walk), and our whole diff (hashes, rules; YARA off and on). Prints seconds
and each ratio to the engine's time. The whole diff is also set beside what gives the same
evidence by hand: the engine's list, then ``sha256sum`` of every added or changed regular
file in the writable layer (one ``xargs -0 sha256sum`` run; making its list is not timed).
Each is the fastest of five rounds in which every side runs once in turn, so that a slow
spell of the shared machine falls on all of them alike. Not a test: nothing is asserted
but equality of the change sets and of the hashes. Needs root and a local engine; removes
its container at the end. bench/run uses :func:`rows`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LABEL, Row, client, interleaved, remove_container, timed, wait_log
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


def measure(files: int, image: str = "forensics-test/busybox:latest", repeat: int = 5,
            yara: bool = True) -> tuple[dict[str, float], bool, int, int]:  # fmt: skip
    """Seconds of the engine's GET /changes and of ours (change list, whole diff, with YARA),
    whether the change sets are equal, their size, and how many entries the image's layers
    hold (the engine walks all of them; we walk the writable layer). Removes its container."""
    cli = client()
    container = cli.containers.run(
        image, ["sh", "-c", SCRIPT.format(n=files)], detach=True, labels={LABEL: "1"}
    )
    try:
        wait_log(container, b"READY")
        disk = DockerDisk("/")
        inventory = disk.inventory()
        found = resolve_container(inventory, container.id)
        layers = container_layers(disk, inventory, found)
        upper = host_path("/", layers.upper)
        lowers = [host_path("/", layer.path) for layer in layers.lowers]
        kinds = {0: "C", 1: "A", 2: "D"}
        engine = cli.api.diff(container.id)
        theirs = {(kinds[c["Kind"]], c["Path"]) for c in engine}
        with _sha256sum(upper, sorted(p for k, p in theirs if k in "AC")) as hash_all:
            seconds, results = interleaved({
                "engine": lambda: cli.api.diff(container.id),
                "sha256sum": hash_all,
                "walk": lambda: compute_changes(upper, lowers),
                "full": lambda: analyse(found, layers, "/", DiffOptions(yara=False)),
            }, repeat)  # fmt: skip
        if yara:
            seconds["yara"], _ = timed(lambda: analyse(found, layers, "/", DiffOptions(yara=True)), 1)
        mine = {(c.kind, c.path.decode()) for c in results["walk"].changes}
        sums = {}
        for line in results["sha256sum"].decode().splitlines():
            digest, name = line.split("  ", 1)
            sums[name[len(upper) :]] = digest
        hashed = {e.path.decode(): e.sha256 for e in results["full"].entries if isinstance(e.sha256, str)}
        image_entries = sum(len(dirs) + len(names) for lower in lowers for _, dirs, names in os.walk(lower))
        return seconds, theirs == mine and sums == hashed, len(theirs), image_entries
    finally:
        remove_container(container)
        cli.close()


@contextlib.contextmanager
def _sha256sum(upper: str, paths: list[str]) -> Iterator[Callable[[], bytes]]:
    """A run of ``xargs -0 sha256sum`` over the regular files among ``paths`` in the writable
    layer ``upper`` (its list made here, untimed); it gives sha256sum's output."""
    files = [p for p in paths if stat.S_ISREG(os.lstat(upper + p).st_mode)]
    with tempfile.NamedTemporaryFile() as listing:
        listing.write(b"".join(os.fsencode(upper + p) + b"\0" for p in files))
        listing.flush()

        def hash_all() -> bytes:
            with open(listing.name, "rb") as stdin:
                return subprocess.run(["xargs", "-0", "sha256sum"], stdin=stdin, capture_output=True,
                                      check=True).stdout  # fmt: skip

        yield hash_all


def rows(files: int, image: str = "forensics-test/busybox:latest", repeat: int = 5) -> list[Row]:
    """The suite's rows: our change list against GET /changes (what docker diff gives);
    our whole diff (hashes, rules, no YARA) against GET /changes + sha256sum of the changed
    files (the same evidence by hand), and, for the record, against GET /changes alone.

    The engine's differ walks the image's whole tree as well as the container's, so its
    time grows with the image; ours grows with the changes. The suite runs both a tiny
    image (busybox, the engine's best case) and a distribution's (debian:bookworm-slim).
    """
    seconds, equal, count, image_entries = measure(files, image, repeat=repeat, yara=False)
    engine, by_hand = seconds["engine"], seconds["engine"] + seconds["sha256sum"]
    note = f"{count:,} changes, sets and hashes {'equal' if equal else 'DIFFER'}; fastest of {repeat}, interleaved"
    walk, full = seconds["walk"], seconds["full"]
    base = f"{files:,} files on {image.split('/')[-1]} ({image_entries:,} entries)"
    return [
        Row("container diff vs docker diff", f"{base}, change list", f"{walk:.3f} s",
            f"{engine:.3f} s", walk / engine, "<= 1.0x", walk / engine <= 1.0, note),
        Row("container diff vs docker diff + sha256sum", f"{base}, whole diff: + hashes, rules",
            f"{full:.3f} s", f"{by_hand:.3f} s", full / by_hand, "<= 1.0x", full / by_hand <= 1.0,
            f"{note}; theirs: GET /changes {engine:.3f} s + xargs sha256sum {seconds['sha256sum']:.3f} s"),
        Row("container diff vs docker diff", f"{base}, whole diff: + hashes, rules", f"{full:.3f} s",
            f"{engine:.3f} s", full / engine, "", None,
            f"{note}; no target: docker diff hashes nothing, the like-for-like rows are above"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--image", default="forensics-test/busybox:latest")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    seconds, equal, count, image_entries = measure(args.files, args.image, args.repeat)
    print(
        f"changes: {count} (engine); equal to ours: {equal}; the image's layers hold {image_entries} entries"
    )
    engine_s = seconds["engine"]
    print(f"engine GET /changes          {engine_s:8.3f} s   1.00")
    print(f"engine + xargs sha256sum     {engine_s + seconds['sha256sum']:8.3f} s")
    for label, key in (("disk: change list", "walk"), ("disk: diff, hashes, rules", "full"),
                       ("disk: diff + YARA", "yara")):  # fmt: skip
        print(f"{label:28} {seconds[key]:8.3f} s   {seconds[key] / engine_s:.2f}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
