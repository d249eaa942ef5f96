"""Docker Bench checks on a fake host root and canned Engine API inspect dicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from forensics.findings import Severity
from forensics.host.engine import Engine
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable
from forensics.scan import bench
from forensics.scan.checks import BENCH
from forensics.scan.model import Status
from forensics.scan.steps import bench_findings
from tests.unit.fakehost import fake_host

BAD = "b" * 64
GOOD = "a" * 64


def container(cid: str, name: str, host_config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Id": cid,
        "Name": "/" + name,
        "Image": "sha256:" + "c" * 64,
        "State": {"Running": True},
        "AppArmorProfile": "docker-default",
        "Config": {"User": "", "Image": "victim:latest"},
        "HostConfig": {"NetworkMode": "default", "RestartPolicy": {"Name": "no"}},
        "Mounts": [],
        "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {}}},
    }
    base["HostConfig"].update(host_config or {})
    base.update(extra)
    return base


def bad_container() -> dict[str, Any]:
    return container(
        BAD,
        "bad",
        {"CapAdd": ["NET_ADMIN"], "Privileged": True, "PidMode": "host", "NetworkMode": "host", "IpcMode": "host",
         "UTSMode": "host", "SecurityOpt": ["seccomp=unconfined", "apparmor=unconfined"],
         "RestartPolicy": {"Name": "always"}, "Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
        Mounts=[
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": True},
            {"Type": "bind", "Source": "/etc", "Destination": "/host-etc", "RW": False},
            {"Type": "bind", "Source": "/", "Destination": "/rootfs", "RW": True, "Propagation": "rshared"},
        ],
        NetworkSettings={"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}, "Networks": {"host": {}}},
    )  # fmt: skip


def good_container() -> dict[str, Any]:
    return container(
        GOOD,
        "good",
        {"Memory": 64 << 20, "PidsLimit": 100, "ReadonlyRootfs": True, "CpuShares": 512,
         "SecurityOpt": ["no-new-privileges:true"], "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
         "NetworkMode": "lab"},
        Config={"User": "1000", "Image": "victim:1.0", "Healthcheck": {"Test": ["CMD", "true"]}},
        NetworkSettings={"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                         "Networks": {"lab": {}}},
    )  # fmt: skip


INFO = {
    "SecurityOptions": ["name=apparmor", "name=seccomp,profile=default"],
    "Driver": "overlay2",
    "LoggingDriver": "json-file",
    "LiveRestoreEnabled": False,
    "ExperimentalBuild": False,
    "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}},
    "Swarm": {"LocalNodeState": "inactive"},
}


def host_root(tmp_path: Path) -> Path:
    root = fake_host(tmp_path)
    (root / "etc/docker").mkdir()
    (root / "etc/docker/daemon.json").write_text(json.dumps({"icc": False, "log-level": "debug",
                                                             "insecure-registries": ["10.0.0.1:5000"]}))  # fmt: skip
    os.chmod(root / "etc/docker/daemon.json", 0o666)
    (root / "etc/group").write_text("root:x:0:\ndocker:x:998:alice,mallory\n")
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "lib/systemd/system/docker.service").write_text("[Service]\nExecStart=/usr/bin/dockerd\n")
    os.chmod(root / "lib/systemd/system/docker.service", 0o644)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/dockerd").write_bytes(b"\x7fELF")
    (root / "usr/bin/runc").write_bytes(b"\x7fELF")
    (root / "etc/audit/rules.d").mkdir(parents=True)
    (root / "etc/audit/rules.d/docker.rules").write_text(
        "-w /usr/bin/dockerd -k docker\n# -w /usr/bin/runc\n"
    )
    return root


def inputs(root: Path, containers: Any, **kw: Any) -> bench.BenchInputs:
    cmdline = kw.pop("cmdline", ["/usr/bin/dockerd", "-H", "fd://", "-H", "tcp://0.0.0.0:2375", "--icc=true"])
    fs = RootFS(root)
    errors: list[str] = []
    defaults: dict[str, Any] = dict(
        fs=fs,
        data_root="/var/lib/docker",
        daemon=bench.merge_config(bench.read_daemon_json(fs, errors), cmdline),
        mounts=bench.parse_mounts("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /var/lib/docker xfs rw 0 0\n"),
        info=INFO,
        version={"Version": "20.10.24"},
        containers=containers,
        images=[],
    )
    defaults.update(kw)
    return bench.BenchInputs(**defaults)


def by_id(report: bench.BenchReport, subject: str = "host") -> dict[str, Status]:
    return {r.id: r.status for r in report.results if r.subject == subject}


def test_flags_parse_as_daemon_json_keys() -> None:
    flags = bench.parse_flags(["dockerd", "--icc=false", "-H", "tcp://1.2.3.4:2376", "--tlsverify", "--live-restore",
                               "--storage-opt", "dm.basesize=20G", "--log-level", "warn", "--unknown", "x"])  # fmt: skip
    assert flags == {"icc": False, "hosts": ["tcp://1.2.3.4:2376"], "tlsverify": True, "live-restore": True,
                     "storage-opts": ["dm.basesize=20G"], "log-level": "warn"}  # fmt: skip


def test_host_daemon_and_file_checks(tmp_path: Path) -> None:
    report = bench.run_bench(inputs(host_root(tmp_path), []))
    host = by_id(report)
    assert host["1.1.1"] is Status.PASS  # /var/lib/docker is its own mount
    assert host["1.1.3"] is Status.PASS  # dockerd audited
    assert host["1.1.18"] is Status.WARN  # runc exists, its rule is commented out
    assert host["1.1.14"] is Status.INFO  # containerd not on this host
    assert host["1.1.2"] is Status.INFO
    assert "alice, mallory" in next(r.details for r in report.results if r.id == "1.1.2")
    assert host["2.2"] is Status.WARN  # the command line's --icc=true overrides daemon.json
    assert host["2.3"] is Status.WARN  # log-level debug
    assert host["2.5"] is Status.WARN  # insecure registry
    assert host["2.7"] is Status.WARN  # tcp without TLS
    assert host["2.6"] is Status.PASS
    assert host["3.1"] is Status.PASS or os.geteuid() != 0
    assert host["3.2"] is Status.PASS
    assert host["3.18"] is Status.WARN  # daemon.json 0666
    assert host["3.3"] is Status.INFO  # no docker.socket unit
    assert host["7.1"] is Status.PASS
    findings = bench_findings(report, "scan.host", ("scan/host.json",))
    rules = {f.rule for f in findings}
    assert {"bench.2.7", "bench.3.18", "bench.1.1.18"} <= rules
    assert "bench.1.1.3" not in rules
    assert next(f for f in findings if f.rule == "bench.2.7").severity is Severity.HIGH


def test_shared_mounts_unknown_and_no_audit(tmp_path: Path) -> None:
    root = host_root(tmp_path)
    (root / "etc/audit/rules.d/docker.rules").unlink()
    report = bench.run_bench(
        inputs(root, [], mounts=NotAvailable("not live"), cmdline=NotAvailable("not live"))
    )
    host = by_id(report)
    assert host["1.1.1"] is Status.INFO
    assert host["1.1.3"] is Status.WARN
    assert host["2.2"] is Status.PASS  # daemon.json alone: icc false
    assert host["2.7"] is Status.INFO  # no TCP listener known


RUNTIME_BAD = {"5.1", "5.3", "5.4", "5.5", "5.7", "5.9", "5.10", "5.12", "5.13", "5.14", "5.15", "5.16",
               "5.17", "5.19", "5.20", "5.21", "5.25", "5.26", "5.28", "5.31", "4.1"}  # fmt: skip


def test_runtime_checks_flag_the_bad_container_and_pass_the_good(tmp_path: Path) -> None:
    report = bench.run_bench(inputs(host_root(tmp_path), [bad_container(), good_container()]))
    bad = by_id(report, f"container:{BAD}")
    good = by_id(report, f"container:{GOOD}")
    warned = {k for k, v in bad.items() if v is Status.WARN}
    assert warned >= RUNTIME_BAD
    assert not {k for k, v in good.items() if v is Status.WARN}
    assert all(good[k] is Status.PASS for k in RUNTIME_BAD)
    findings = bench_findings(report, "scan.host", ("scan/host.json",))
    subjects = {f.subject for f in findings if f.rule.startswith("bench.5.")}
    assert subjects == {f"container:{BAD}"}
    sock = next(f for f in findings if f.rule == "bench.5.31")
    assert sock.severity is Severity.HIGH and "docker.sock" in sock.details and "Remediation" in sock.details
    details = next(r.details for r in report.results if r.id == "5.5" and r.subject == f"container:{BAD}")
    assert "/etc -> /host-etc (ro)" in details and "/ -> /rootfs (rw)" in details


@pytest.mark.parametrize(
    ("policy", "status"),
    [({"Name": "on-failure", "MaximumRetryCount": 5}, Status.PASS),
     ({"Name": "on-failure", "MaximumRetryCount": 10}, Status.WARN),
     ({"Name": "unless-stopped"}, Status.WARN), ({"Name": "no"}, Status.PASS)],
)  # fmt: skip
def test_restart_policy(tmp_path: Path, policy: dict[str, Any], status: Status) -> None:
    c = container(GOOD, "x", {"RestartPolicy": policy})
    report = bench.run_bench(inputs(host_root(tmp_path), [c]))
    assert by_id(report, f"container:{GOOD}")["5.14"] is status


def test_apparmor_absent_on_host_is_info_not_warn(tmp_path: Path) -> None:
    c = container(GOOD, "x", AppArmorProfile="")
    report = bench.run_bench(inputs(host_root(tmp_path), [c], info={**INFO, "SecurityOptions": []}))
    assert by_id(report, f"container:{GOOD}")["5.1"] is Status.INFO


def test_no_engine_means_undecided_not_passed(tmp_path: Path) -> None:
    na = NotAvailable("no engine")
    report = bench.run_bench(inputs(host_root(tmp_path), na, images=na, info=na, version=na))
    statuses = {r.id: r.status for r in report.results}
    assert statuses["5.4"] is Status.INFO and statuses["7.1"] is Status.INFO
    assert not [r for r in report.results if r.id.startswith("5.") and r.status is Status.PASS]


def test_images_healthcheck_update_alone_and_add(tmp_path: Path) -> None:
    iid = "sha256:" + "d" * 64
    image = {"Id": iid, "RepoTags": ["x:1"], "Config": {}}
    history = [{"CreatedBy": "/bin/sh -c apt-get update"},
               {"CreatedBy": "/bin/sh -c #(nop) ADD file:abc in /app "}]  # fmt: skip
    report = bench.run_bench(inputs(host_root(tmp_path), [], images=[image], histories={iid: history}))
    img = by_id(report, f"image:{iid}")
    assert img["4.6"] is Status.WARN and img["4.7"] is Status.INFO and img["4.9"] is Status.INFO


def test_every_check_is_numbered_once() -> None:
    ids = list(BENCH)
    assert len(ids) == len(set(ids))
    assert sum(1 for i in ids if i.startswith("5.")) == 31
    assert all(c.remediation for c in BENCH.values())


def test_dockerd_found_by_comm(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm, argv in (
        (1, "systemd", b"/sbin/init\0"),
        (42, "dockerd", b"/usr/bin/dockerd\0--icc=false\0"),
    ):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "cmdline").write_bytes(argv)
    assert bench.find_dockerd(proc) == ["/usr/bin/dockerd", "--icc=false"]
    assert isinstance(bench.find_dockerd(tmp_path / "none"), NotAvailable)


class FakeEngine:
    """Canned Engine API answers, for gather()."""

    each = Engine.each  # the real fan-out over the canned answers

    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self._containers = {c["Id"]: c for c in containers}

    def info(self) -> dict[str, Any]:
        return INFO

    def version(self) -> dict[str, Any]:
        return {"Version": "20.10.24"}

    def containers(self) -> list[dict[str, Any]]:
        return [{"Id": cid} for cid in self._containers]

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return self._containers[cid]

    def container_top(self, cid: str) -> dict[str, Any]:
        return {"Titles": ["PID", "CMD"], "Processes": [["1", "/usr/sbin/sshd -D"]]}

    def images(self) -> list[dict[str, Any]]:
        return [{"Id": "sha256:" + "c" * 64, "RepoTags": ["victim:latest"]},
                {"Id": "sha256:" + "f" * 64, "RepoTags": ["<none>:<none>"]}]  # fmt: skip

    def inspect_image(self, iid: str) -> dict[str, Any]:
        return {"Id": iid, "RepoTags": ["victim:latest"], "Config": {}}

    def image_history(self, iid: str) -> list[dict[str, Any]]:
        return [{"CreatedBy": "/bin/sh -c #(nop) ADD file:x in /"}]


def test_gather_leaves_the_appliance_out(tmp_path: Path) -> None:
    from forensics.context import HostContext

    host = HostContext(
        host_root(tmp_path), NotAvailable("test"), _engine=FakeEngine([bad_container(), good_container()])
    )
    got = bench.gather(host, exclude_container=BAD)
    assert isinstance(got.containers, list) and [c["Id"] for c in got.containers] == [GOOD]
    assert (
        isinstance(got.images, list) and got.images == []
    )  # the appliance's image, and an untagged unused one
    assert got.excluded and "the appliance itself" in got.excluded[0]
    assert isinstance(got.daemon.cmdline, NotAvailable)  # a mounted root has no live /proc
    report = bench.run_bench(got)
    assert by_id(report, f"container:{GOOD}")["5.6"] is Status.WARN  # sshd seen through the engine's top
    assert not [r for r in report.results if r.subject == f"container:{BAD}"]


def test_host_step_stores_and_reports(tmp_path: Path) -> None:
    from forensics.context import HostContext
    from forensics.evidence.log import AcquisitionLog
    from forensics.evidence.writer import EvidenceWriter, StepSink
    from forensics.host.appliance import SelfView
    from forensics.scan.steps import scan_host
    from forensics.steps import StepContext, TriageOptions

    host = HostContext(host_root(tmp_path), NotAvailable("test"), _engine=FakeEngine([bad_container()]))
    writer = EvidenceWriter(tmp_path / "out")
    me = SelfView(True, GOOD, "sha256:" + "0" * 64, True)
    ctx = StepContext("scan.host", host, StepSink(writer, "scan.host"), AcquisitionLog(writer), TriageOptions(),
                      {"self": me})  # fmt: skip
    scan_host(ctx)
    stored = json.loads((tmp_path / "out/scan/host.json").read_text())
    assert {r["id"] for r in stored["results"]} >= {"1.1.1", "2.2", "3.15", "5.31", "7.1"}
    rules = {f.rule for f in ctx.findings if f.subject == f"container:{BAD}"}
    assert {"bench.5.4", "bench.5.31", "bench.5.15"} <= rules
    assert all(f.evidence == ("scan/host.json",) for f in ctx.findings)
