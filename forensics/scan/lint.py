"""dockle's checkpoints, natively: the image config, its history, and one walk of its files.

IDs and levels are dockle's (:data:`forensics.scan.checks.DOCKLE`); the ones dockle does not
support are reported as SKIP. When a ``dockle`` binary is on PATH it runs too, and its JSON
is stored beside ours; when it is not, that is said (never faked).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Iterable
from typing import Any

from forensics.errors import NotFound, UnsafePath
from forensics.host.disk import DockerDisk, is_hex64
from forensics.records import NotAvailable, display_path
from forensics.scan.checks import (
    DOCKLE,
    SECRET_ENV_ALLOWED,
    SECRET_ENV_WORDS,
    SECRET_FILE_NAMES,
    SENSITIVE_VOLUMES,
    SUDO_PATHS,
    UNNECESSARY_NAMES,
)
from forensics.scan.imagefiles import ImageEntry, merged_entries
from forensics.scan.model import CheckResult, Status, ToolOutcome, result
from forensics.tools import run, which

MAX_ACCOUNT_FILE = 4 * 1024 * 1024
MAX_LISTED = 50
DOCKLE_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """What the checks read from an image besides its files."""

    id: str
    """``sha256:<hex>``."""
    ref: str
    """The name it was asked by."""
    repo_tags: list[str]
    config: dict[str, Any]
    """The image's runtime config (User, Env, Healthcheck, Volumes...)."""
    history: list[str]
    """Each history entry's created_by, oldest first."""
    diff_ids: list[str]
    source: str
    """engine or disk."""


@dataclasses.dataclass(frozen=True)
class FileFacts:
    """What one walk of the image's files found for the checks."""

    setid: list[str]
    secret_files: list[str]
    unnecessary: list[str]
    sudo: list[str]
    apt_lists: int
    """Regular files left in /var/lib/apt/lists (lock excluded)."""
    passwd: str | None
    shadow: str | None
    group: str | None
    entries: int


@dataclasses.dataclass(frozen=True)
class LintReport:
    """dockle's checkpoints for one image, and the dockle binary's own answer."""

    image: str
    image_id: str
    results: list[CheckResult]
    files: str | NotAvailable
    """How the files were read, or why they could not be."""
    dockle: ToolOutcome
    problems: list[str]


# ---------------------------------------------------------------- the image


def image_meta(engine: Any, disk: DockerDisk | None, ref: str) -> ImageMeta:
    """The image's config and history, from the engine when it answers, else from disk."""
    if not isinstance(engine, NotAvailable) and engine is not None:
        try:
            inspect = engine.inspect_image(ref)
        except Exception as exc:
            raise NotFound(f"the engine does not know image {ref!r}: {exc}") from None
        history = [str(h.get("CreatedBy") or "") for h in reversed(engine.image_history(inspect["Id"]))]
        return ImageMeta(str(inspect["Id"]), ref, list(inspect.get("RepoTags") or []),
                         dict(inspect.get("Config") or {}), history,
                         list((inspect.get("RootFS") or {}).get("Layers") or []), "engine")  # fmt: skip
    if disk is None:
        raise NotFound(f"image {ref!r}: no engine and no docker data")
    inventory = disk.inventory()
    want = ref.removeprefix("sha256:")
    matches = [i for i in inventory.images
               if ref in i.repo_tags or (len(want) >= 4 and i.id[7:].startswith(want))
               or (":" not in ref and f"{ref}:latest" in i.repo_tags)]  # fmt: skip
    if len(matches) != 1:
        raise NotFound(f"image {ref!r}: {len(matches)} matches on disk")
    image = matches[0]
    problems: list[Any] = []
    config = disk.read_json(image.config_path, problems) or {}
    runtime = config.get("config") if isinstance(config.get("config"), dict) else {}
    history = [str(h.get("created_by") or "") for h in config.get("history") or [] if isinstance(h, dict)]
    return ImageMeta(image.id, ref, image.repo_tags, dict(runtime or {}), history, image.diff_ids, "disk")


def file_facts(entries: Iterable[ImageEntry], problems: list[str]) -> FileFacts:
    """One walk feeds every file check."""
    setid: list[str] = []
    secrets: list[str] = []
    unnecessary: list[str] = []
    sudo: list[str] = []
    apt = 0
    accounts: dict[bytes, str | None] = {b"/etc/passwd": None, b"/etc/shadow": None, b"/etc/group": None}
    count = 0
    for entry in entries:
        count += 1
        mode = entry.st.st_mode
        name = entry.path.rpartition(b"/")[2]
        text = display_path(entry.path)
        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
            setid.append(f"{text} {stat.filemode(mode)}")
        if name in SECRET_FILE_NAMES and not stat.S_ISDIR(mode):
            secrets.append(text)
        if name in UNNECESSARY_NAMES:
            unnecessary.append(text)
        if entry.path in SUDO_PATHS and not stat.S_ISDIR(mode):
            sudo.append(text)
        if entry.path.startswith(b"/var/lib/apt/lists/") and stat.S_ISREG(mode) and name != b"lock":
            apt += 1
        if entry.path in accounts and stat.S_ISREG(mode):
            try:
                raw = entry.fs.read_bytes(entry.path, MAX_ACCOUNT_FILE)
                accounts[entry.path] = raw.decode("utf-8", "replace")
            except (UnsafePath, OSError) as exc:
                problems.append(f"{text}: {exc}")
    return FileFacts(sorted(setid), sorted(secrets), sorted(unnecessary), sudo, apt,
                     accounts[b"/etc/passwd"], accounts[b"/etc/shadow"], accounts[b"/etc/group"], count)  # fmt: skip


# ---------------------------------------------------------------- the checks


def _split(history: list[str]) -> list[str]:
    """Each history line's shell commands, split on && ; ||."""
    out = []
    for line in history:
        body = line.split("#(nop)", 1)[1] if "#(nop)" in line else line
        out.append(body.strip())
    return out


def _secret_env(config: dict[str, Any]) -> list[str]:
    found = []
    for item in config.get("Env") or []:
        key = str(item).split("=", 1)[0]
        if key in SECRET_ENV_ALLOWED:
            continue
        if any(word in key.upper() for word in SECRET_ENV_WORDS):
            found.append(key)
    return found


_UPDATE = re.compile(r"\b(apt-get|apt|apk|yum|dnf|zypper)\s+(-\S+\s+)*update\b")
_INSTALL = re.compile(r"\b(apt-get|apt|apk|yum|dnf|zypper)\s+(-\S+\s+)*(install|add)\b")
_APT_INSTALL = re.compile(r"\bapt(-get)?\s+(-\S+\s+)*install\b")
_APK_ADD = re.compile(r"\bapk\s+(-\S+\s+)*add\b")
_BASE_ADD = re.compile(r"^ADD (file|multi):[0-9a-f]+ in / ?$")


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def _accounts(passwd: str | None, shadow: str | None, group: str | None) -> tuple[list[str], list[str]]:
    empty: list[str] = []
    dupes: list[str] = []
    for text, pw_field in ((passwd, 1), (shadow, 1)):
        for line in (text or "").splitlines():
            fields = line.split(":")
            if len(fields) > pw_field and fields[0] and fields[pw_field] == "":
                empty.append(fields[0])
    for text, label in ((passwd, "uid"), (group, "gid")):
        ids: dict[str, list[str]] = {}
        for line in (text or "").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2]:
                ids.setdefault(fields[2], []).append(fields[0])
        dupes += [f"{label} {i}: {', '.join(names)}" for i, names in ids.items() if len(names) > 1]
    return sorted(set(empty)), dupes


def run_lint(meta: ImageMeta, facts: FileFacts | NotAvailable) -> list[CheckResult]:
    subject = "image:" + meta.id
    out: list[CheckResult] = []

    def add(check_id: str, failed: bool, details: str) -> None:
        check = DOCKLE[check_id]
        out.append(result(check, check.level if failed else Status.PASS, subject, details))

    def skip(check_id: str, reason: str) -> None:
        out.append(result(DOCKLE[check_id], Status.SKIP, subject, reason))

    cfg, commands = meta.config, _split(meta.history)
    user = str(cfg.get("User") or "")
    add(
        "CIS-DI-0001",
        user in ("", "root", "0") or user.startswith(("root:", "0:")),
        f"User={user or '(none)'}",
    )
    for check_id in ("CIS-DI-0002", "CIS-DI-0003", "CIS-DI-0004", "CIS-DI-0011"):
        skip(
            check_id,
            "not supported by dockle" + (": use forensics scan image" if check_id == "CIS-DI-0004" else ""),
        )
    trust = os.environ.get("DOCKER_CONTENT_TRUST") == "1"
    add(
        "CIS-DI-0005",
        not trust,
        f"DOCKER_CONTENT_TRUST={'1' if trust else 'unset'} (dockle checks its own environment)",
    )
    add(
        "CIS-DI-0006",
        not cfg.get("Healthcheck"),
        "HEALTHCHECK set" if cfg.get("Healthcheck") else "no HEALTHCHECK",
    )
    alone = [c for c in commands if _UPDATE.search(c) and not _INSTALL.search(c)]
    add("CIS-DI-0007", bool(alone), _listed(alone) or "no update alone")
    adds = [c for c in commands if c.startswith("ADD ") and not (c is commands[0] and _BASE_ADD.match(c))]
    add("CIS-DI-0009", bool(adds), _listed(adds) or "no ADD (the base image's root file system excepted)")
    env = _secret_env(cfg)
    secret_files = facts.secret_files if isinstance(facts, FileFacts) else []
    details = "; ".join(x for x in (f"ENV {', '.join(env)}" if env else "",
                                    f"files {_listed(secret_files)}" if secret_files else "") if x)  # fmt: skip
    add("CIS-DI-0010", bool(env or secret_files), details or "no credential in ENV or file names")
    sudo_cmds = [c for c in commands if re.search(r"(^|[\s;&|])sudo\s", c)]
    sudo_files = facts.sudo if isinstance(facts, FileFacts) else []
    add("DKL-DI-0001", bool(sudo_cmds or sudo_files), _listed(sudo_files + sudo_cmds) or "no sudo")
    volumes = [
        v
        for v in (cfg.get("Volumes") or {})
        if any(v == s or v.startswith(s + "/") for s in SENSITIVE_VOLUMES)
    ]
    add("DKL-DI-0002", bool(volumes), _listed(volumes) or "no sensitive VOLUME")
    upgrades = [c for c in commands if re.search(r"\bdist-upgrade\b", c)]
    add("DKL-DI-0003", bool(upgrades), _listed(upgrades) or "no dist-upgrade")
    apk = [c for c in commands if _APK_ADD.search(c) and "--no-cache" not in c]
    add("DKL-DI-0004", bool(apk), _listed(apk) or "no apk add without --no-cache")
    apt_cmds = [c for c in commands if _APT_INSTALL.search(c) and "/var/lib/apt/lists" not in c]
    apt_files = facts.apt_lists if isinstance(facts, FileFacts) else 0
    apt_text = _listed(apt_cmds) + (f"; {apt_files} files in /var/lib/apt/lists" if apt_files else "")
    add("DKL-DI-0005", bool(apt_cmds or apt_files), apt_text.strip("; ") or "apt caches cleared")
    tags = meta.repo_tags + (
        [meta.ref]
        if meta.ref not in meta.repo_tags and not is_hex64(meta.ref.removeprefix("sha256:"))
        else []
    )
    latest = sorted(
        {
            t
            for t in tags
            if t.endswith(":latest") or ("/" not in t.rpartition(":")[2] and ":" not in t and "@" not in t)
        }
    )
    add("DKL-DI-0006", bool(latest), _listed(latest) or "no latest tag")
    if isinstance(facts, NotAvailable):
        for check_id in ("CIS-DI-0008", "DKL-LI-0001", "DKL-LI-0002", "DKL-LI-0003"):
            skip(check_id, f"files not read: {facts.reason}")
    else:
        add("CIS-DI-0008", bool(facts.setid), _listed(facts.setid) or "no setuid/setgid file")
        empty, dupes = _accounts(facts.passwd, facts.shadow, facts.group)
        add(
            "DKL-LI-0001",
            bool(empty),
            f"empty password: {', '.join(empty)}" if empty else "no empty password",
        )
        add("DKL-LI-0002", bool(dupes), _listed(dupes) or "unique uids and gids")
        add("DKL-LI-0003", bool(facts.unnecessary), _listed(facts.unnecessary) or "none")
    order = list(DOCKLE)
    return sorted(out, key=lambda r: order.index(r.id))


def run_dockle(ref: str, forbidden_root: str | None) -> ToolOutcome:
    found = which("dockle", forbidden_root)
    if isinstance(found, NotAvailable):
        return ToolOutcome("dockle", "skipped", f"{found.reason}: only the native checks ran")
    argv = [found, "-f", "json", "--exit-code", "0", ref]
    ran = run(argv, timeout=DOCKLE_TIMEOUT)
    if not ran.ok:
        return ToolOutcome("dockle", "failed", ran.describe(), tuple(argv), ran.returncode)
    try:
        parsed = json.loads(ran.stdout)
    except ValueError as exc:
        return ToolOutcome("dockle", "failed", f"output is not JSON: {exc}", tuple(argv), ran.returncode)
    return ToolOutcome("dockle", "ran", "", tuple(argv), ran.returncode, parsed)


def lint_image(host: Any, ref: str, use_dockle: bool = True) -> LintReport:
    """All of dockle's checkpoints on one image of ``host`` (a HostContext)."""
    disk = host.disk()
    meta = image_meta(host.engine(), disk if disk.exists() else None, ref)
    problems: list[str] = []
    facts: FileFacts | NotAvailable
    files: str | NotAvailable
    if not disk.exists():
        facts = files = NotAvailable(f"no docker data under {host.root}")
    elif not meta.diff_ids:
        facts = files = NotAvailable("the image lists no layers")
    else:
        facts = file_facts(merged_entries(disk, meta.diff_ids, problems), problems)
        files = f"{facts.entries} entries from {len(meta.diff_ids)} overlay2 layer dirs"
    dockle = run_dockle(ref, str(host.root) if str(host.root) != "/" else None) if use_dockle else \
        ToolOutcome("dockle", "skipped", "not asked")  # fmt: skip
    return LintReport(ref, meta.id, run_lint(meta, facts), files, dockle, problems)
