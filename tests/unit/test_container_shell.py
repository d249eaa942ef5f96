"""container shell: the plan (our binaries, the right process) decided before anything runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from forensics.containers.shell import container_pid, plan_shell
from forensics.errors import EnvironmentProblem, UsageProblem
from forensics.host.disk import DiskContainer, DockerDisk
from forensics.records import NotAvailable
from tests.unit.fakehost import add_container, fake_host

NO_ENGINE = NotAvailable("test")


def _setup(tmp_path: Path, cgroup: str, running: bool = True) -> tuple[DiskContainer, Path, str]:
    root = fake_host(tmp_path)
    cid = add_container(root, "shell", "web", running=running)
    container = DockerDisk(str(root)).inventory().containers[0]
    proc = tmp_path / "proc"
    (proc / "1234").mkdir(parents=True)
    (proc / "1234/cgroup").write_text(cgroup.format(cid=cid))
    return container, proc, cid


def test_the_process_must_be_in_the_containers_cgroup(tmp_path: Path) -> None:
    container, proc, cid = _setup(tmp_path, "12:pids:/docker/{cid}\n1:name=systemd:/docker/{cid}\n")
    assert container_pid(container, proc, NO_ENGINE) == 1234
    plan = plan_shell(container, proc, NO_ENGINE, forbidden_root=str(tmp_path / "host"), command="hostname")
    assert plan.argv[1:7] == ["--target=1234", "--pid", "--net", "--ipc", "--uts", "--"]
    assert "--mount" not in plan.argv[:7]  # the container's mount namespace is never entered
    assert plan.argv[-3:] == ["--norc", "-c", "hostname"]
    assert all(Path(plan.argv[i]).is_absolute() for i in (0, 7))
    assert plan.env["CROOT"] == "/proc/1/root" and plan.env["FORENSICS_CONTAINER"] == cid


def test_systemd_cgroup_driver_names_are_accepted(tmp_path: Path) -> None:
    container, proc, _ = _setup(tmp_path, "0::/system.slice/docker-{cid}.scope\n")
    assert container_pid(container, proc, NO_ENGINE) == 1234


def test_a_reused_pid_is_refused(tmp_path: Path) -> None:
    container, proc, _ = _setup(tmp_path, "12:pids:/user.slice\n")
    with pytest.raises(EnvironmentProblem, match="reused pid"):
        container_pid(container, proc, NO_ENGINE)


def test_a_stopped_container_has_nothing_to_enter(tmp_path: Path) -> None:
    container, proc, _ = _setup(tmp_path, "", running=False)
    with pytest.raises(UsageProblem, match="not running"):
        container_pid(container, proc, NO_ENGINE)
    gone = dataclasses.replace(container, state=dataclasses.replace(container.state, running=True, pid=99999))
    with pytest.raises(EnvironmentProblem, match="not visible"):
        container_pid(gone, proc, NO_ENGINE)
