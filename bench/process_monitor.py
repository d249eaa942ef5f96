"""Benchmark: `process monitor` catch rate for short-lived processes, and its idle CPU.

    python bench/process_monitor.py [--count 1000] [--lifetimes 1 5 10 50] [--idle 10]

Three watchers run side by side, each in its own process: our monitor as the triage runs
it (netlink process connector: we are root), our monitor in pspy's mode (``--no-netlink``:
inotify watches + a /proc scan every 100 ms), and a plain /proc poll every 100 ms. This
process then starts COUNT processes one after another (``sleep LIFETIME``, posix_spawn,
waited for) and counts how many of their pids each watcher reported. Idle CPU: the same
watchers over a window with nothing spawned by us, measured with getrusage(RUSAGE_SELF)
inside each watcher from the window's start to its end. The machine is shared: other
people's processes in the window are work for the watchers too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, Row

WATCHERS = ("netlink", "inotify+poll", "poll 100 ms")
SLEEP = "/bin/sleep"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(kind: str) -> int:
    """Watch until a line arrives on stdin; print the pids seen and the CPU spent."""
    seen: set[int] = set()
    if kind == "poll 100 ms":
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                seen.update(int(n) for n in os.listdir("/proc") if n.isdigit())
                time.sleep(0.1)

        thread = threading.Thread(target=poll, daemon=True)
        events = None
    else:
        from forensics.host.disk import DockerDisk
        from forensics.process.attribution import ContainerIndex
        from forensics.process.monitor import Monitor

        disk = DockerDisk("/")
        index = ContainerIndex.build("/proc", disk.inventory() if disk.exists() else None)
        monitor = Monitor("/proc", "/", index, use_netlink=kind == "netlink", exclude_tree=os.getpid())
        events = monitor.events
        thread = threading.Thread(target=monitor.run, args=(24 * 3600,), daemon=True)
    thread.start()
    time.sleep(2.0)  # connector subscribed, or the baseline scan done and the watches placed
    start = _cpu()
    print("READY", flush=True)
    sys.stdin.readline()
    cpu = _cpu() - start
    if events is not None:
        seen = {e.pid for e in list(events)}
    print(json.dumps({"pids": sorted(seen), "cpu": cpu}), flush=True)
    os._exit(0)  # the monitor's thread has no stop; it ends with us


def start_watchers() -> dict[str, subprocess.Popen[str]]:
    procs = {}
    for kind in WATCHERS:
        procs[kind] = subprocess.Popen([PYTHON, __file__, "--worker", kind], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
    for proc in procs.values():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("a watcher did not start")
    return procs


def stop_watchers(procs: dict[str, subprocess.Popen[str]]) -> dict[str, dict[str, object]]:
    out = {}
    for kind, proc in procs.items():
        stdout, _ = proc.communicate("stop\n", timeout=120)
        out[kind] = json.loads(stdout.strip().splitlines()[-1])
    return out


def spawn(count: int, lifetime_ms: float) -> tuple[list[int], float]:
    pids = []
    start = time.perf_counter()
    for _ in range(count):
        pid = os.posix_spawn(SLEEP, ["sleep", f"{lifetime_ms / 1000:.3f}"], os.environ)
        pids.append(pid)
        os.waitpid(pid, 0)
    return pids, time.perf_counter() - start


def rows(count: int = 1000, lifetimes: tuple[float, ...] = (1, 5, 10, 50), idle: float = 10) -> list[Row]:
    out = []
    for lifetime in lifetimes:
        procs = start_watchers()
        try:
            pids, took = spawn(count, lifetime)
            time.sleep(0.5)
        finally:
            seen = stop_watchers(procs)
        rate = {k: len(set(pids) & set(v["pids"])) / len(pids) for k, v in seen.items()}  # type: ignore[call-overload]
        base = rate["poll 100 ms"]
        for kind in WATCHERS[:2]:
            ratio = rate[kind] / base if base else None
            out.append(Row("process monitor catch rate", f"{count} x {lifetime:g} ms, {kind}",
                           f"{rate[kind]:.1%}", f"{base:.1%}", ratio, "", None,
                           f"vs plain 100 ms poll; spawning took {took:.1f} s"))  # fmt: skip
    procs = start_watchers()
    time.sleep(idle)
    seen = stop_watchers(procs)
    base_cpu = float(seen["poll 100 ms"]["cpu"])  # type: ignore[arg-type]
    for kind in WATCHERS[:2]:
        cpu = float(seen[kind]["cpu"])  # type: ignore[arg-type]
        out.append(Row("process monitor idle CPU", f"{idle:g} s window, {kind}", f"{cpu / idle:.2%} of a core",
                       f"{base_cpu / idle:.2%}", cpu / base_cpu if base_cpu else None, "", None,
                       "getrusage(RUSAGE_SELF) in the watcher; vs plain 100 ms poll"))  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=WATCHERS)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--lifetimes", type=float, nargs="+", default=[1, 5, 10, 50])
    parser.add_argument("--idle", type=float, default=10)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    for row in rows(args.count, tuple(args.lifetimes), args.idle):
        print(f"{row.bench} {row.case}: ours {row.ours}, plain poll {row.theirs}; {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
