"""Account files, parsed: what an attacker changed in passwd, shadow, group and sudoers.

Parsing is lenient (a malformed line is kept as a problem, never a crash) and bounded by
the caller (files are read size-limited). Password hashes never go into a finding's
text: a finding says that a hash changed or became empty, the archive holds the files.
"""

from __future__ import annotations

import dataclasses
import re

from forensics.findings import Finding, Severity
from forensics.records import char_escape

PRIVILEGED_GROUPS = frozenset({"root", "sudo", "wheel", "adm", "admin", "docker", "disk", "shadow", "lxd",
                               "kmem", "systemd-journal"})  # fmt: skip
NO_LOGIN_SHELLS = ("/nologin", "/false", "/sync", "/shutdown", "/halt")
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers")


@dataclasses.dataclass(frozen=True)
class PasswdEntry:
    name: str
    password: str
    """The second field: ``x`` (in shadow), ``*``/``!`` (locked), empty, or a hash."""
    uid: int | None
    gid: int | None
    gecos: str
    home: str
    shell: str


@dataclasses.dataclass(frozen=True)
class AccountChange:
    """One difference between the image's account files and the container's."""

    file: str
    account: str
    what: str
    """``added``, ``removed``, ``uid-0``, ``uid``, ``gid``, ``shell``, ``home``, ``password-in-passwd``,
    ``empty-password``, ``password-changed``, ``group-member``, ``group-added``, ``sudo-rule``,
    ``sudo-include``."""
    before: str
    after: str
    severity: Severity


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _int(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{1,10}", value) else None


def parse_passwd(text: str) -> tuple[dict[str, PasswdEntry], list[str]]:
    entries: dict[str, PasswdEntry] = {}
    problems = []
    for line in _lines(text):
        fields = line.split(":")
        if len(fields) != 7:
            problems.append(f"malformed passwd line with {len(fields)} fields: {line[:80]!r}")
            if len(fields) < 7:
                continue
        name, password, uid, gid, gecos, home = fields[:6]
        shell = ":".join(fields[6:])
        if name in entries:
            problems.append(f"account {name!r} is listed twice")
        entries.setdefault(name, PasswdEntry(name, password, _int(uid), _int(gid), gecos, home, shell))
    return entries, problems


def parse_shadow(text: str) -> tuple[dict[str, str], list[str]]:
    """name -> password field."""
    out: dict[str, str] = {}
    problems = []
    for line in _lines(text):
        fields = line.split(":")
        if len(fields) < 2:
            problems.append(f"malformed shadow line: {line[:20]!r}...")
            continue
        out.setdefault(fields[0], fields[1])
    return out, problems


def parse_group(text: str) -> tuple[dict[str, tuple[int | None, frozenset[str]]], list[str]]:
    """name -> (gid, members)."""
    out: dict[str, tuple[int | None, frozenset[str]]] = {}
    problems = []
    for line in _lines(text):
        fields = line.split(":")
        if len(fields) != 4:
            problems.append(f"malformed group line with {len(fields)} fields: {line[:80]!r}")
            if len(fields) < 4:
                continue
        members = frozenset(m.strip() for m in fields[3].split(",") if m.strip())
        out.setdefault(fields[0], (_int(fields[2]), members))
    return out, problems


def sudo_rules(text: str) -> tuple[set[str], set[str]]:
    """(rule and alias lines, include directives), whitespace-normalised, comments dropped."""
    rules: set[str] = set()
    includes: set[str] = set()
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if re.match(r"[#@]include(dir)?\s", line):
            includes.add(line)
            continue
        if line.startswith("#"):
            continue
        if line.startswith("Defaults") and "!authenticate" not in line:
            continue
        rules.add(line)
    return rules, includes


def _hash_state(value: str) -> str:
    if value == "":
        return "empty"
    if value.startswith(("!", "*")) or value in ("x", "NP", "LK"):
        return "locked"
    return "set"


def _passwd_changes(before: str, after: str, file: str) -> list[AccountChange]:
    old, _ = parse_passwd(before)
    new, _ = parse_passwd(after)
    out = []
    for name, entry in new.items():
        prior = old.get(name)
        if entry.uid == 0 and (prior is None or prior.uid != 0):
            out.append(
                AccountChange(file, name, "uid-0", str(prior.uid) if prior else "", "0", Severity.CRITICAL)
            )
        if prior is None:
            out.append(AccountChange(file, name, "added", "", f"uid {entry.uid} shell {entry.shell}",
                                     Severity.HIGH))  # fmt: skip
        else:
            if entry.uid != prior.uid and entry.uid != 0:
                out.append(AccountChange(file, name, "uid", str(prior.uid), str(entry.uid), Severity.HIGH))
            if entry.gid != prior.gid:
                out.append(AccountChange(file, name, "gid", str(prior.gid), str(entry.gid), Severity.MEDIUM))
            if entry.shell != prior.shell:
                opened = prior.shell.endswith(NO_LOGIN_SHELLS) and not entry.shell.endswith(NO_LOGIN_SHELLS)
                severity = Severity.HIGH if opened else Severity.MEDIUM
                out.append(AccountChange(file, name, "shell", prior.shell, entry.shell, severity))
            if entry.home != prior.home:
                out.append(AccountChange(file, name, "home", prior.home, entry.home, Severity.LOW))
        if entry.password not in ("x", "*", "!", "!!") and (
            prior is None or prior.password != entry.password
        ):
            if entry.password == "":
                out.append(AccountChange(file, name, "empty-password", "", "", Severity.CRITICAL))
            else:
                out.append(AccountChange(file, name, "password-in-passwd", "", "(hash)", Severity.HIGH))
    for name in old.keys() - new.keys():
        out.append(AccountChange(file, name, "removed", "", "", Severity.LOW))
    return out


def _shadow_changes(before: str, after: str, file: str) -> list[AccountChange]:
    old, _ = parse_shadow(before)
    new, _ = parse_shadow(after)
    out = []
    for name, value in new.items():
        prior = old.get(name)
        state, prior_state = _hash_state(value), _hash_state(prior) if prior is not None else "absent"
        if state == "empty" and prior_state != "empty":
            out.append(AccountChange(file, name, "empty-password", prior_state, "empty", Severity.CRITICAL))
        elif prior is None:
            out.append(AccountChange(file, name, "added", "", state, Severity.HIGH if state == "set" else
                                     Severity.MEDIUM))  # fmt: skip
        elif value != prior:
            severity = Severity.HIGH if state == "set" else Severity.MEDIUM
            out.append(AccountChange(file, name, "password-changed", prior_state, state, severity))
    for name in old.keys() - new.keys():
        out.append(AccountChange(file, name, "removed", "", "", Severity.LOW))
    return out


def _group_changes(before: str, after: str, file: str) -> list[AccountChange]:
    old, _ = parse_group(before)
    new, _ = parse_group(after)
    out = []
    for name, (gid, members) in new.items():
        prior = old.get(name)
        if prior is None:
            out.append(AccountChange(file, name, "group-added", "", f"gid {gid}", Severity.LOW))
        joined = members - (prior[1] if prior else frozenset())
        for member in sorted(joined):
            privileged = name in PRIVILEGED_GROUPS or gid == 0
            severity = Severity.HIGH if privileged else Severity.LOW
            out.append(AccountChange(file, name, "group-member", "", member, severity))
    return out


def _sudo_changes(before: str, after: str, file: str) -> list[AccountChange]:
    old_rules, old_includes = sudo_rules(before)
    new_rules, new_includes = sudo_rules(after)
    out = []
    for rule in sorted(new_rules - old_rules):
        out.append(AccountChange(file, rule.split()[0], "sudo-rule", "", rule[:300], Severity.HIGH))
    for include in sorted(new_includes - old_includes):
        out.append(AccountChange(file, "", "sudo-include", "", include[:300], Severity.MEDIUM))
    return out


def is_account_file(path: str) -> bool:
    return path in ACCOUNT_FILES or path.startswith("/etc/sudoers.d/")


def account_changes(path: str, before: str, after: str) -> list[AccountChange]:
    """Differences between two versions of an account file (``before`` empty: it is new)."""
    if path == "/etc/passwd":
        return _passwd_changes(before, after, path)
    if path in ("/etc/shadow", "/etc/gshadow"):
        return _shadow_changes(before, after, path)
    if path == "/etc/group":
        return _group_changes(before, after, path)
    if path == "/etc/sudoers" or path.startswith("/etc/sudoers.d/"):
        return _sudo_changes(before, after, path)
    return []


_TITLES = {
    "uid-0": "new uid 0 account {account!r}",
    "added": "account {account!r} added to {file}",
    "removed": "account {account!r} removed from {file}",
    "uid": "uid of {account!r} changed",
    "gid": "primary group of {account!r} changed",
    "shell": "login shell of {account!r} changed to {after}",
    "home": "home of {account!r} changed",
    "password-in-passwd": "password hash for {account!r} written into /etc/passwd",
    "empty-password": "empty password for {account!r} in {file}",
    "password-changed": "password of {account!r} changed in {file}",
    "group-member": "{after!r} added to group {account!r}",
    "group-added": "group {account!r} added",
    "sudo-rule": "new sudo rule in {file}: {after}",
    "sudo-include": "new sudoers include in {file}: {after}",
}


def findings(
    changes: list[AccountChange], subject: str, label: str, evidence: tuple[str, ...]
) -> list[Finding]:
    out = []
    for change in changes:
        title = _TITLES[change.what].format(account=change.account, file=change.file, after=change.after)
        title = "".join(ch if ch.isprintable() else char_escape(ch) for ch in title)
        out.append(
            Finding(
                rule=f"container.accounts.{change.what}",
                severity=change.severity,
                title=f"{label}: {title}"[:400],
                subject=subject,
                source="containers.compare",
                evidence=evidence,
                details=f"before: {change.before}" if change.before else "",
            )
        )
    return out
