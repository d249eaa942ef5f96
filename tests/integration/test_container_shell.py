"""container shell on a real container: its namespaces, our binaries, its files as data."""

from __future__ import annotations

import os

import pytest
from testcontainers.core.container import DockerContainer

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]


def test_shell_command_sees_the_container(busybox_image: str, capfd: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    victim = DockerContainer(busybox_image).with_command(
        ["sh", "-c", "echo marker > /planted; exec sleep 600"]
    )
    victim.start()
    try:
        wrapped = victim.get_wrapped_container()
        command = (
            'hostname; tr "\\0" " " < /proc/1/cmdline; echo; cat "$CROOT/planted"; readlink /proc/self/exe'
        )
        assert main(["container", "shell", wrapped.id[:12], "--root", "/", "--no-engine", "-c", command]) == 0
        lines = capfd.readouterr().out.splitlines()
        assert lines[0] == wrapped.id[:12]  # uts namespace: the container's hostname
        assert lines[1].strip() == "sleep 600"  # pid namespace with its own /proc
        assert lines[2] == "marker"  # the container's files, read as data
        assert not lines[3].startswith("/proc/")  # the shell is our bash, not the container's
        assert main(["container", "shell", wrapped.id[:12], "--root", "/", "-c", "exit 3"]) == 3
    finally:
        victim.stop()
