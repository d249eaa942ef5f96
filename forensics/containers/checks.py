"""Run the suspicious-change rule table over a container's changes.

The table is data (:mod:`forensics.rules.container_changes`); here are the named checks
the table refers to, and the matcher. The diff offers each change once: :meth:`wanted`
says which rules look at it (path, kind, type; cheap), the diff reads the file's head once
if any of them needs content, and :meth:`matches` gives the rules that hold.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import stat
from collections.abc import Callable, Sequence
from typing import NamedTuple

from forensics.rules.container_changes import RULES, WEB_SCRIPTS, ChangeRule
from forensics.rules.globs import GlobSet

SYSTEM_DIRS = (b"/", b"/bin", b"/sbin", b"/usr/bin", b"/usr/sbin", b"/usr/local/bin", b"/usr/local/sbin",
               b"/lib", b"/lib64", b"/usr/lib", b"/usr/lib64", b"/usr/local/lib", b"/etc", b"/boot", b"/dev",
               b"/tmp", b"/var/tmp", b"/dev/shm", b"/run", b"/var/run", b"/root", b"/var/www", b"/srv",
               b"/opt", b"/var/spool", b"/var/lib")  # fmt: skip
"""Directories where a new dot-file is hidden rather than a user's configuration."""

KNOWN_DOTFILES = {b"/.dockerenv", b"/etc/.pwd.lock", b"/tmp/.X11-unix", b"/tmp/.ICE-unix", b"/tmp/.XIM-unix",
                  b"/tmp/.font-unix", b"/tmp/.Test-unix", b"/etc/.java", b"/root/.cache", b"/root/.config",
                  b"/root/.local", b"/root/.npm", b"/root/.wget-hsts", b"/root/.gnupg",
                  b"/root/.ash_history", b"/root/.bash_history", b"/root/.profile", b"/root/.bashrc",
                  b"/root/.ssh", b"/root/.viminfo", b"/root/.lesshst", b"/root/.python_history"}  # fmt: skip
"""Dot-files that are ordinary where they are (the histories have their own rule)."""


class Candidate(NamedTuple):
    """What the checks see of one change (a named tuple: one is made per change, and a
    frozen dataclass costs ten times as much to build)."""

    kind: str
    path: bytes
    file_type: str
    """Of the current entry, or of the original for ``D``."""
    mode: int
    """Current st_mode (the original's for ``D``)."""
    size: int
    original_mode: int | None
    original_size: int | None


def _name(path: bytes) -> bytes:
    return path[path.rfind(b"/") + 1 :]


def _parent(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] or b"/"


_PLAIN_NAME = re.compile(rb"[!-~]*[!-\-/-~][!-~]*")
"""Printable ASCII, no blank, not dots only: never odd (the common case, decided at once)."""


def odd_name(c: Candidate, _head: bytes) -> bool:
    name = _name(c.path)
    if name.isalnum() or _PLAIN_NAME.fullmatch(name):  # isalnum: ASCII letters and digits
        return False
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return True
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return True
    if text.strip(". ") == "" and text not in (".", ".."):
        return True  # "...", ". ", ".. " and the like
    if text != text.strip() or any(ch in text for ch in "\u202e\u00a0\u200b\u2028"):
        return True  # blanks at an end, right-to-left override, look-alike spaces
    return " " in text and _parent(c.path) in SYSTEM_DIRS


def hidden_name(c: Candidate, _head: bytes) -> bool:
    path = c.path
    if not path.startswith(b".", path.rfind(b"/") + 1) or path in KNOWN_DOTFILES:  # the name's first byte
        return False
    return _parent(c.path) in SYSTEM_DIRS


def new_setuid(c: Candidate, _head: bytes) -> bool:
    bits = stat.S_ISUID | stat.S_ISGID
    if c.kind == "D" or not c.mode & bits:
        return False
    if c.mode & stat.S_ISGID and not c.mode & stat.S_IXGRP and not c.mode & stat.S_ISUID:
        return False  # setgid without group execute is mandatory locking, not privilege
    return c.original_mode is None or (c.mode & bits) & ~c.original_mode != 0


def emptied(c: Candidate, _head: bytes) -> bool:
    if c.kind == "D":
        return True
    if c.size == 0:
        return c.kind == "C" or "history" in _name(c.path).decode("utf-8", "replace")
    return c.original_size is not None and c.size < c.original_size


def web_script(c: Candidate, _head: bytes) -> bool:
    name = _name(c.path).decode("utf-8", "replace").lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in WEB_SCRIPTS)


def _globs(patterns: Sequence[str]) -> GlobSet | None:
    """The globs as one :class:`GlobSet`; None for no globs."""
    return GlobSet(patterns) if patterns else None


CHECKS: dict[str, Callable[[Candidate, bytes], bool]] = {
    "odd-name": odd_name,
    "hidden-name": hidden_name,
    "new-setuid": new_setuid,
    "emptied": emptied,
    "web-script": web_script,
}
"""Named checks the rule table may use."""


_Test = tuple[
    ChangeRule, int, tuple[bytes, ...], re.Pattern[bytes] | None, Callable[[Candidate, bytes], bool] | None
]
"""One rule made ready: (rule, window, magic, content pattern, check), looked up once."""


class Plan(NamedTuple):
    """The rules that want one change, made ready to run over it (one plan serves every
    change of the same kind, type and path class: :meth:`Matcher.plan` keeps them)."""

    tests: tuple[_Test, ...]
    window: int
    """How many of the file's first bytes the rules need (0: none)."""
    supersedes: bool
    """Whether a rule of the plan may take another out."""


class Matcher:
    """The rule table, compiled once: each rule's globs become one regular expression.

    Most changes are ordinary files that no path-specific rule wants: one expression made
    of every path-specific rule's globs rules them all out at once, so such a change costs
    one match (plus one per distinct exclude of the rules that want every path), not one
    per rule.
    """

    def __init__(self, rules: Sequence[ChangeRule] = RULES) -> None:
        for rule in rules:
            if rule.check and rule.check not in CHECKS:
                raise ValueError(f"rule {rule.id} names an unknown check {rule.check!r}")
        self.rules = list(rules)
        self._patterns = {rule.id: rule.pattern() for rule in rules}
        self._paths = {rule.id: None if "*" in rule.paths else _globs(rule.paths) for rule in rules}
        self._exclude = {rule.id: _globs(rule.exclude) for rule in rules}
        self._any_path = _globs(
            [glob for rule in rules if self._paths[rule.id] is not None for glob in rule.paths]
        )
        excludes = sorted({rule.exclude for rule in rules if rule.exclude and self._paths[rule.id] is None})
        self._general_excludes = [
            (1 << bit, globs) for bit, globs in enumerate(map(_globs, excludes)) if globs
        ]
        self._exclude_bit = {globs: 1 << bit for bit, globs in enumerate(excludes)}
        self._general: dict[tuple[str, str, int], Plan] = {}
        self._plans: dict[tuple[str, ...], Plan] = {}

    @staticmethod
    @functools.cache
    def default() -> Matcher:
        """The whole table, compiled once per process (its caches only ever grow with the
        same answers, so threads may share it)."""
        return Matcher()

    def plan(self, c: Candidate) -> Plan:
        """The rules that want this change, by kind, type and path alone, and how many of
        its first bytes they need."""
        text = c.path.decode("utf-8", "surrogateescape")
        if self._any_path is not None and self._any_path.match(text):
            return self._made([rule for rule in self.rules if self._wants(rule, c, text)])
        # No path-specific rule wants it: what the rules for every path want depends only
        # on kind, type and which of their excludes hold.
        excluded = 0
        for bit, pattern in self._general_excludes:
            if pattern.match(text):
                excluded |= bit
        key = (c.kind, c.file_type, excluded)
        found = self._general.get(key)
        if found is None:
            found = self._general[key] = self._made([
                rule for rule in self.rules
                if self._paths[rule.id] is None and self._shape(rule, c)
                and not excluded & self._exclude_bit.get(rule.exclude, 0)
            ])  # fmt: skip
        return found

    def _made(self, rules: list[ChangeRule]) -> Plan:
        key = tuple(rule.id for rule in rules)
        found = self._plans.get(key)
        if found is None:
            tests = tuple(
                (rule, rule.window, rule.magic, self._patterns[rule.id], CHECKS[rule.check] if rule.check else None)
                for rule in rules
            )  # fmt: skip
            window = max((r.window for r in rules if r.wants_content), default=0)
            found = self._plans[key] = Plan(tests, window, any(r.supersedes for r in rules))
        return found

    @staticmethod
    def _shape(rule: ChangeRule, c: Candidate) -> bool:
        return c.kind in rule.kinds and (not rule.file_types or c.file_type in rule.file_types)

    def _wants(self, rule: ChangeRule, c: Candidate, text: str) -> bool:
        if not self._shape(rule, c):
            return False
        paths, exclude = self._paths[rule.id], self._exclude[rule.id]
        if paths is not None and not paths.match(text):
            return False
        return exclude is None or not exclude.match(text)

    @staticmethod
    def matches(c: Candidate, plan: Plan, head: bytes) -> list[ChangeRule]:
        """The planned rules that hold, given the file's first bytes (each rule sees no
        more than its own window of them)."""
        out = []
        for rule, window, magic, pattern, check in plan.tests:
            if magic and not head.startswith(magic, 0, window):
                continue
            if pattern is not None and not pattern.search(head, 0, window):
                continue
            if check is not None and not check(c, head[:window]):
                continue
            out.append(rule)
        if out and plan.supersedes:
            superseded = {s for r in out for s in r.supersedes}
            out = [r for r in out if r.id not in superseded]
        return out
