"""Benchmark: `image layers` against `dive --ci`, and against `cat layer.tar > /dev/null`.

    python bench/image_layers.py [--mb 100 500]

Builds an image of about the asked size from debian:bookworm-slim (DOCKER_BUILDKIT=0) by
adding layers of random data (one of them rewrites an earlier file, so dive has wasted
bytes to find). Then, each from a cold page cache for that image's files (only its own
files are evicted, with posix_fadvise DONTNEED; the machine's cache is left alone):
`forensics image layers IMAGE --json` (walks the layer directories on disk, metadata
only: dive's figures and the per-layer changes need no file's bytes), `dive --ci
IMAGE` (asks the engine for `docker save`), and `cat image.tar > /dev/null` over a `docker
save` of the same image: the rate at which this disk gives the same bytes. Three rounds of
the three in turn; the fastest of each is kept. Removes its image and files at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    FORENSICS,
    Row,
    build_image,
    client,
    dive_binary,
    human_bytes,
    remove_image,
    run,
    scratch_dir,
    time_cmd,
)
from forensics.host.disk import DockerDisk

BASE = "debian:bookworm-slim"
BASE_MB = 75


def dockerfile(total_mb: int) -> str:
    """Layers of random data bringing the image to about ``total_mb``."""
    extra = max(total_mb - BASE_MB, 8)
    layers = max(2, extra // 80)
    each = extra // layers
    lines = [f"FROM {BASE}"]
    for i in range(layers - 1):
        lines.append(f"RUN head -c {each}M /dev/urandom > /blob{i}")
    # the last layer rewrites half of blob0: dive counts the first copy as wasted
    lines.append(
        f"RUN head -c {each // 2}M /dev/urandom > /blob0 && head -c {each // 2}M /dev/urandom > /tail"
    )
    return "\n".join(lines) + "\n"


def evict(paths: list[str]) -> None:
    """Drop these files (walked, links not followed) from the page cache."""
    for top in paths:
        if os.path.isfile(top):
            files = [top]
        else:
            files = [os.path.join(d, f) for d, _, names in os.walk(top) for f in names]
        for name in files:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def layer_dirs(image_id: str) -> list[str]:
    disk = DockerDisk("/")
    image = next(i for i in disk.inventory().images if i.id == image_id)
    return [d for d in disk.layer_dirs(image.diff_ids) if isinstance(d, str)]


def cold(paths: list[str], argv: list[str], check: bool = True) -> float:
    evict(paths)
    start = time.perf_counter()
    run(argv, check=check)
    return time.perf_counter() - start


def rows(sizes: list[int], repeat: int = 3) -> list[Row]:
    out: list[Row] = []
    cli = client()
    with scratch_dir("bench-layers-") as work:
        dive, dive_from = dive_binary(work)
        startup, _ = time_cmd([*FORENSICS, "--version"], repeat=3)
        for mb in sizes:
            tag = f"forensics-bench/layers:{mb}mb"
            build_image(cli, dockerfile(mb), tag)
            try:
                image_id = cli.images.get(tag).id
                dirs = layer_dirs(image_id)
                tar = work / "image.tar"
                run(["docker", "save", "-o", str(tar), tag])
                os.sync()  # written back, so that its pages can be dropped for the cold reads
                size = tar.stat().st_size
                run([*FORENSICS, "image", "layers", tag, "--json"])  # warm the interpreter's own files
                runs = [  # rounds of the three in turn, the fastest of each kept
                    (cold(dirs, [*FORENSICS, "image", "layers", tag, "--json"]),
                     cold(dirs, [dive, "--ci", tag], check=False),
                     cold([str(tar)], ["sh", "-c", f"cat '{tar}' > /dev/null"]))
                    for _ in range(repeat)
                ]  # fmt: skip
                ours, theirs, cat = (min(column) for column in zip(*runs, strict=True))
                tar.unlink()
            finally:
                remove_image(cli, tag)
            ratio = ours / theirs
            case = f"~{mb} MB image ({human_bytes(size)} as tar)"
            out.append(Row("image layers vs dive --ci", case, f"{ours:.2f} s", f"{theirs:.2f} s", ratio,
                           "<= 0.5x", ratio <= 0.5,
                           f"cold cache, fastest of {repeat} rounds; our CLI's start alone (forensics --version) {startup:.2f} s; "
                           f"dive from {dive_from}"))  # fmt: skip
            mine, disk = size / ours, size / cat
            out.append(Row("image layers vs cat image.tar", case, f"{human_bytes(mine)}/s",
                           f"{human_bytes(disk)}/s", mine / disk, "(disk's limit)", None,
                           f"cat {cat:.2f} s; cold cache; image layers reads no file's bytes (metadata "
                           "only: one lstat per entry), so ours is the image's size over our time, and over "
                           "1.0 means answered sooner than the disk could give the bytes"))  # fmt: skip
    cli.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, nargs="+", default=[100, 500])
    args = parser.parse_args()
    for row in rows(args.mb):
        print(
            f"{row.bench} {row.case}: ours {row.ours}, theirs {row.theirs}, ratio {row.ratio:.2f}; {row.note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
