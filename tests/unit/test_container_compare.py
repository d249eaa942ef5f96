"""container compare on a fake overlay2 host, and the account-file parsers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.containers.accounts import account_changes, parse_group, parse_passwd, sudo_rules
from forensics.containers.compare import Comparison, compare
from forensics.containers.layers import container_layers, resolve_container
from forensics.errors import NotFound
from forensics.findings import Severity
from forensics.host.disk import DockerDisk
from tests.unit.test_container_diff import Overlay, build, same_meta, whiteout

pytestmark = pytest.mark.root

PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n"
SHADOW = "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nwww-data:*:19000::::::\n"
GROUP = "root:x:0:\nsudo:x:27:\nwww-data:x:33:\n"


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: whiteouts are 0/0 character devices")


def _with_accounts(tmp_path: Path) -> Overlay:
    o = build(tmp_path)
    for name, text in (("passwd", PASSWD), ("shadow", SHADOW), ("group", GROUP)):
        (o.image_layer / "etc" / name).write_text(text)
    (o.upper / "etc").mkdir()
    same_meta(o.init / "etc", o.upper / "etc")
    return o


def _compare(o: Overlay, path: str) -> Comparison:
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    container = resolve_container(inventory, o.cid)
    return compare(container, container_layers(disk, inventory, container), str(o.root), path, "x.json")


def test_changed_passwd_gives_a_diff_and_account_findings(tmp_path: Path) -> None:
    o = _with_accounts(tmp_path)
    (o.upper / "etc/passwd").write_text(
        PASSWD.replace("www-data:x:33:33::/var/www:/usr/sbin/nologin", "www-data:x:33:33::/var/www:/bin/bash")
        + "toor:x:0:0::/root:/bin/sh\n"
    )
    result = _compare(o, "/etc/passwd")
    assert result.status == "changed" and result.content == "differs"
    assert result.original is not None and result.original.layer == "image"
    assert result.current is not None and result.current.layer == "writable"
    assert isinstance(result.text_diff, str)
    assert "+toor:x:0:0::/root:/bin/sh" in result.text_diff
    assert result.text_diff.startswith("--- image:/etc/passwd\n+++ container:/etc/passwd\n")
    rules = {(f.rule, f.severity) for f in result.findings}
    assert ("container.accounts.uid-0", Severity.CRITICAL) in rules
    assert ("container.accounts.added", Severity.HIGH) in rules
    assert ("container.accounts.shell", Severity.HIGH) in rules
    assert all(f.evidence == ("x.json",) for f in result.findings)


def test_shadow_hash_changes_never_reach_a_title(tmp_path: Path) -> None:
    o = _with_accounts(tmp_path)
    (o.upper / "etc/shadow").write_text(
        SHADOW.replace("$6$salt$hash", "$6$new$secret").replace("www-data:*:", "www-data::")
    )
    result = _compare(o, "etc/shadow")
    whats = {(c.account, c.what) for c in result.accounts}
    assert whats == {("root", "password-changed"), ("www-data", "empty-password")}
    assert not any("secret" in f.title or "secret" in f.details for f in result.findings)


def test_unchanged_added_deleted_and_binary(tmp_path: Path) -> None:
    o = _with_accounts(tmp_path)
    unchanged = _compare(o, "/etc/group")
    assert unchanged.status == "unchanged" and unchanged.content == "same" and unchanged.text_diff == ""
    assert unchanged.current is not None and unchanged.current.layer == "image"
    whiteout(o.upper / "etc/group")
    deleted = _compare(o, "/etc/group")
    assert deleted.status == "deleted" and deleted.current is None
    (o.upper / "etc/sudoers.d").mkdir()
    (o.upper / "etc/sudoers.d/x").write_text("www-data ALL=(ALL) NOPASSWD: ALL\n")
    added = _compare(o, "/etc/sudoers.d/x")
    assert added.status == "added" and added.original is None
    assert [(c.what, c.account) for c in added.accounts] == [("sudo-rule", "www-data")]
    (o.upper / "bin").mkdir()
    (o.upper / "bin/busybox").write_bytes(b"\x7fELF" + b"\0\1" * 40)
    binary = _compare(o, "/bin/busybox")
    assert binary.status == "changed" and binary.content == "differs"
    assert not isinstance(binary.text_diff, str)
    assert binary.original is not None and binary.original.meta.size == 64
    with pytest.raises(NotFound):
        _compare(o, "/no/such/file")


def test_links_are_compared_as_data_never_followed(tmp_path: Path) -> None:
    o = _with_accounts(tmp_path)
    os.symlink("/etc/shadow", o.upper / "etc/passwd.link")
    os.symlink("../../../../../../etc", o.upper / "escape")
    result = _compare(o, "/etc/passwd.link")
    assert result.status == "added" and result.current is not None
    assert result.current.link_target == b"/etc/shadow"
    assert not isinstance(result.text_diff, str)
    # A path through a link does not exist as named: the link is not followed.
    with pytest.raises(NotFound):
        _compare(o, "/escape/passwd")
    with pytest.raises(NotFound):
        _compare(o, "/etc/../etc/passwd")


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = _with_accounts(tmp_path)
    (o.upper / "etc/passwd").write_text(PASSWD + "evil:x:0:0::/:/bin/sh\n")
    argv = ["container", "compare", "web", "/etc/passwd", "--root", str(o.root), "--no-engine"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == "/etc/passwd" and data["status"] == "changed"
    assert any(f["rule"] == "container.accounts.uid-0" for f in data["findings"])
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "+evil:x:0:0::/:/bin/sh" in shown  # no emoji for ":x:"
    assert main(["container", "compare", "web", "/nope", "--root", str(o.root), "--no-engine"]) == 2


def test_parsers_are_lenient() -> None:
    entries, problems = parse_passwd("root:x:0:0::/root:/bin/sh\nbroken line\nu:x:abc:1::/:/bin/sh\n")
    assert set(entries) == {"root", "u"} and entries["u"].uid is None and len(problems) == 1
    groups, _ = parse_group("sudo:x:27:alice, bob\n")
    assert groups["sudo"] == (27, frozenset({"alice", "bob"}))
    rules, includes = sudo_rules(
        "# c\nDefaults env_reset\nbob ALL=(ALL) \\\n  NOPASSWD: ALL\n@includedir /x\n"
    )
    assert rules == {"bob ALL=(ALL) NOPASSWD: ALL"} and includes == {"@includedir /x"}


def test_group_membership_in_privileged_groups() -> None:
    changes = account_changes("/etc/group", GROUP, GROUP.replace("sudo:x:27:", "sudo:x:27:www-data"))
    assert [(c.what, c.account, c.after, c.severity) for c in changes] == [
        ("group-member", "sudo", "www-data", Severity.HIGH)
    ]
    hashed = account_changes("/etc/passwd", PASSWD, PASSWD.replace("daemon:x:", "daemon::"))
    assert [(c.what, c.account) for c in hashed] == [("empty-password", "daemon")]


def test_read_hashes_whole_files_and_keeps_only_small_ones(tmp_path: Path) -> None:
    from forensics.containers import compare as module
    from forensics.host.rootfs import RootFS

    small, big = b"root:x:0:0::/root:/bin/sh\n", os.urandom(3 << 20)
    (tmp_path / "small").write_bytes(small)
    (tmp_path / "big").write_bytes(big)
    fs = RootFS(str(tmp_path))
    assert module._read(fs, b"/small") == (hashlib.sha256(small).hexdigest(), small)
    assert module._read(fs, b"/big") == (hashlib.sha256(big).hexdigest(), None)  # over MAX_TEXT: hash only
