"""Docker Bench for Security's checks, decided from a read-only host root plus the Engine API.

Numbering is the CIS Docker Benchmark's (see :data:`forensics.scan.checks.BENCH`). Inputs are
gathered once (:func:`gather`) into :class:`BenchInputs`; :func:`run_bench` is pure, so unit
tests feed it a fake host root and canned inspect dicts. Section 1 reads mounts, audit rules
and etc/group; section 2 daemon.json, dockerd's command line and ``docker info``; section 3
stats files through :class:`RootFS`; sections 4-7 use the Engine API's inspect output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forensics.errors import UnsafePath
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable
from forensics.scan.checks import AUDITED_PATHS, BENCH
from forensics.scan.model import CheckResult, Status, na_text, result

MAX_FILE = 4 * 1024 * 1024
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SENSITIVE_HOST_PATHS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

# dockerd flags and the daemon.json keys they set (lists: a flag given many times).
_FLAG_KEYS = {
    "--icc": "icc", "--log-level": "log-level", "-l": "log-level", "--iptables": "iptables",
    "--insecure-registry": "insecure-registries", "--storage-driver": "storage-driver", "-s": "storage-driver",
    "--tlsverify": "tlsverify", "--tls": "tls", "--tlscacert": "tlscacert", "--tlscert": "tlscert",
    "--tlskey": "tlskey", "-H": "hosts", "--host": "hosts", "--default-ulimit": "default-ulimits",
    "--userns-remap": "userns-remap", "--cgroup-parent": "cgroup-parent", "--storage-opt": "storage-opts",
    "--authorization-plugin": "authorization-plugins", "--log-driver": "log-driver",
    "--no-new-privileges": "no-new-privileges", "--live-restore": "live-restore",
    "--userland-proxy": "userland-proxy", "--seccomp-profile": "seccomp-profile",
    "--experimental": "experimental", "--data-root": "data-root", "-G": "group", "--group": "group",
    "-D": "debug", "--debug": "debug", "--rootless": "rootless",
}  # fmt: skip
_BOOL_KEYS = frozenset({"icc", "iptables", "tlsverify", "tls", "no-new-privileges", "live-restore",
                        "userland-proxy", "experimental", "debug", "rootless"})  # fmt: skip
_LIST_KEYS = frozenset(
    {"insecure-registries", "hosts", "default-ulimits", "storage-opts", "authorization-plugins"}
)


@dataclasses.dataclass(frozen=True)
class DaemonConfig:
    """The daemon's settings: daemon.json, overridden by dockerd's command line."""

    daemon_json: dict[str, Any] | NotAvailable
    cmdline: list[str] | NotAvailable
    """dockerd's argv from the host's /proc."""
    merged: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.merged.get(key, default)

    def flag(self, key: str, default: bool) -> bool:
        value = self.merged.get(key, default)
        if isinstance(value, str):
            return value.lower() not in ("false", "0", "no")
        return bool(value)

    def items(self, key: str) -> list[Any]:
        value = self.merged.get(key)
        if value is None:
            return []
        return list(value) if isinstance(value, list | tuple) else [value]


def parse_flags(argv: list[str]) -> dict[str, Any]:
    """dockerd's flags as daemon.json keys (unknown flags ignored)."""
    out: dict[str, Any] = {}
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg.partition("=")
        key = _FLAG_KEYS.get(name)
        if key is None:
            continue
        if not eq:
            if key in _BOOL_KEYS:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                continue
        if key in _BOOL_KEYS:
            out[key] = value.lower() not in ("false", "0", "no")
        elif key in _LIST_KEYS:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def merge_config(
    daemon_json: dict[str, Any] | NotAvailable, cmdline: list[str] | NotAvailable
) -> DaemonConfig:
    merged: dict[str, Any] = dict(daemon_json) if isinstance(daemon_json, dict) else {}
    if isinstance(cmdline, list):
        for key, value in parse_flags(cmdline).items():
            if key in _LIST_KEYS:
                merged[key] = list(merged.get(key) or []) + value
            else:
                merged[key] = value
    return DaemonConfig(daemon_json, cmdline, merged)


@dataclasses.dataclass(frozen=True)
class BenchInputs:
    """Everything the checks look at, gathered once."""

    fs: RootFS
    """The host's root file system."""
    data_root: str
    daemon: DaemonConfig
    mounts: list[tuple[str, str, str]] | NotAvailable
    """(source, mount point, fs type) from the host's /proc/1/mounts."""
    info: dict[str, Any] | NotAvailable
    version: dict[str, Any] | NotAvailable
    containers: list[dict[str, Any]] | NotAvailable
    """Engine inspect of each container (the appliance's own left out)."""
    images: list[dict[str, Any]] | NotAvailable
    """Engine inspect of each image (the appliance's own left out)."""
    histories: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """Image id -> engine history."""
    tops: dict[str, dict[str, Any] | NotAvailable] = dataclasses.field(default_factory=dict)
    """Container id -> engine top (processes), for sshd (5.6)."""
    excluded: tuple[str, ...] = ()
    """What was left out and why (the appliance's own container)."""


@dataclasses.dataclass(frozen=True)
class BenchReport:
    """Docker Bench's checks on one host."""

    results: list[CheckResult]
    daemon: DaemonConfig
    excluded: tuple[str, ...]
    problems: list[str]
    """What could not be read (each also shows as an INFO result's details)."""

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for res in self.results:
            counts[res.status.value] = counts.get(res.status.value, 0) + 1
        return counts


# ---------------------------------------------------------------- reading the host


def read_text(fs: RootFS, path: str, problems: list[str] | None = None) -> str | NotAvailable:
    try:
        return fs.read_bytes(path, MAX_FILE).decode("utf-8", "replace")
    except (UnsafePath, OSError) as exc:
        if problems is not None and not _missing(exc):
            problems.append(f"{path}: {exc}")
        return NotAvailable(f"{path}: {exc}")


def _missing(exc: BaseException) -> bool:
    return "missing" in str(exc) or isinstance(exc, FileNotFoundError)


def read_daemon_json(fs: RootFS, problems: list[str]) -> dict[str, Any] | NotAvailable:
    text = read_text(fs, "/etc/docker/daemon.json", problems)
    if isinstance(text, NotAvailable):
        return NotAvailable("no /etc/docker/daemon.json")
    try:
        value = json.loads(text)
    except ValueError as exc:
        problems.append(f"/etc/docker/daemon.json is not valid JSON: {exc}")
        return NotAvailable(f"daemon.json is not valid JSON: {exc}")
    return value if isinstance(value, dict) else NotAvailable("daemon.json is not a JSON object")


def find_dockerd(proc: Path) -> list[str] | NotAvailable:
    """dockerd's argv, from the first process whose comm is ``dockerd``."""
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError as exc:
        return NotAvailable(f"cannot list {proc}: {exc}")
    for pid in pids:
        try:
            comm = (proc / str(pid) / "comm").read_bytes()[:64].strip()
            if comm != b"dockerd":
                continue
            raw = (proc / str(pid) / "cmdline").read_bytes()[:MAX_FILE]
        except OSError:
            continue
        return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    return NotAvailable(f"no dockerd process in {proc}")


def read_mounts(proc: Path) -> list[tuple[str, str, str]] | NotAvailable:
    try:
        text = (proc / "1" / "mounts").read_bytes()[:MAX_FILE].decode("utf-8", "replace")
    except OSError as exc:
        return NotAvailable(f"cannot read {proc}/1/mounts: {exc}")
    return parse_mounts(text)


def parse_mounts(text: str) -> list[tuple[str, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[0], parts[1].replace("\\040", " "), parts[2]))
    return out


def _stat(fs: RootFS, path: str) -> os.stat_result | None:
    try:
        return fs.resolve(path).stat
    except (UnsafePath, OSError):
        return None


def find_unit(fs: RootFS, name: str) -> str | None:
    for folder in UNIT_DIRS:
        path = f"{folder}/{name}"
        if _stat(fs, path) is not None:
            return path
    return None


def group_entry(fs: RootFS, name: str) -> tuple[int, list[str]] | None:
    text = read_text(fs, "/etc/group")
    if isinstance(text, NotAvailable):
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name and fields[2].isdigit():
            return int(fields[2]), [m for m in fields[3].split(",") if m]
    return None


def audit_rules(fs: RootFS) -> list[str] | NotAvailable:
    lines: list[str] = []
    found = False
    files = ["/etc/audit/audit.rules"]
    with contextlib.suppress(UnsafePath, OSError):
        files += [
            "/etc/audit/rules.d/" + n.decode("utf-8", "replace")
            for n in fs.listdir("/etc/audit/rules.d")
            if n.endswith(b".rules")
        ]
    for path in files:
        text = read_text(fs, path)
        if isinstance(text, str):
            found = True
            lines += [
                ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
            ]
    return lines if found else NotAvailable("no audit rules (etc/audit/audit.rules, rules.d/*.rules)")


def _audited(rules: list[str], path: str) -> bool:
    for rule in rules:
        tokens = rule.split()
        for i, tok in enumerate(tokens):
            if tok == "-w" and i + 1 < len(tokens) and tokens[i + 1].rstrip("/") == path.rstrip("/"):
                return True
            if tok.startswith(("path=", "dir=")) and tok.split("=", 1)[1].rstrip("/") == path.rstrip("/"):
                return True
    return False


# ---------------------------------------------------------------- the checks


def run_bench(inputs: BenchInputs) -> BenchReport:
    problems: list[str] = []
    results: list[CheckResult] = []
    for section in (_section1, _section2, _section3, _section4, _section5, _section6, _section7):
        results.extend(section(inputs, problems))
    return BenchReport(results, inputs.daemon, inputs.excluded, problems)


def _r(check_id: str, status: Status, details: str = "", subject: str = "host") -> CheckResult:
    return result(BENCH[check_id], status, subject, details)


def _section1(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    fs = inp.fs
    if isinstance(inp.mounts, NotAvailable):
        yield _r("1.1.1", Status.INFO, f"cannot decide: {inp.mounts.reason}")
    else:
        target = inp.data_root.rstrip("/") or "/"
        hit = [m for m in inp.mounts if m[1] == target]
        if hit:
            yield _r("1.1.1", Status.PASS, f"{target} is mounted from {hit[0][0]} ({hit[0][2]})")
        else:
            yield _r("1.1.1", Status.WARN, f"{target} is not a separate mount")
    group = group_entry(fs, "docker")
    if group is None:
        yield _r("1.1.2", Status.INFO, "no docker group in /etc/group")
    else:
        members = ", ".join(group[1]) or "none"
        yield _r("1.1.2", Status.INFO, f"docker group (gid {group[0]}) members: {members}")
    rules = audit_rules(fs)
    for check_id, path in AUDITED_PATHS.items():
        real: str | None = path
        if path.endswith((".service", ".socket")):
            real = find_unit(fs, path)
        elif check_id == "1.1.3":
            real = next((p for p in ("/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd")
                         if _stat(fs, p) is not None), None)  # fmt: skip
        elif _stat(fs, path) is None:
            real = None
        if real is None:
            yield _r(check_id, Status.INFO, f"{path} not found on the host")
        elif isinstance(rules, NotAvailable):
            yield _r(check_id, Status.WARN, f"{real}: {rules.reason}")
        elif _audited(rules, real):
            yield _r(check_id, Status.PASS, f"audit rule for {real}")
        else:
            yield _r(check_id, Status.WARN, f"no audit rule for {real}")
    yield _r("1.2.1", Status.NOTE, "manual check")
    version = inp.version.get("Version", "?") if isinstance(inp.version, dict) else na_text(inp.version)
    yield _r("1.2.2", Status.INFO, f"Docker Engine version {version}: confirm it is current")


def _security_options(info: dict[str, Any] | NotAvailable) -> list[str]:
    if not isinstance(info, dict):
        return []
    return [str(o) for o in info.get("SecurityOptions") or []]


def _section2(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    cfg, info = inp.daemon, inp.info
    if isinstance(cfg.daemon_json, NotAvailable) and isinstance(cfg.cmdline, NotAvailable):
        problems.append(f"daemon settings unknown: {cfg.daemon_json.reason}; {cfg.cmdline.reason}")
    secopts = _security_options(info)
    src = (
        f"daemon.json: {'read' if isinstance(cfg.daemon_json, dict) else na_text(cfg.daemon_json)}; "
        f"dockerd cmdline: {' '.join(cfg.cmdline) if isinstance(cfg.cmdline, list) else na_text(cfg.cmdline)}"
    )
    rootless = any("name=rootless" in o for o in secopts) or cfg.flag("rootless", False)
    yield _r(
        "2.1", Status.PASS if rootless else Status.INFO, "rootless" if rootless else "daemon runs as root"
    )
    yield _r(
        "2.2",
        Status.PASS if not cfg.flag("icc", True) else Status.WARN,
        f"icc={cfg.flag('icc', True)}; {src}",
    )
    level = str(cfg.get("log-level", "info"))
    yield _r("2.3", Status.PASS if level == "info" else Status.WARN, f"log-level={level}")
    yield _r(
        "2.4",
        Status.PASS if cfg.flag("iptables", True) else Status.WARN,
        f"iptables={cfg.flag('iptables', True)}",
    )
    insecure = [str(r) for r in cfg.items("insecure-registries")]
    if isinstance(info, dict):
        reg = info.get("RegistryConfig") or {}
        insecure += [c for c in reg.get("InsecureRegistryCIDRs") or [] if c not in ("127.0.0.0/8", "::1/128")]
        insecure += [
            n
            for n, v in (reg.get("IndexConfigs") or {}).items()
            if isinstance(v, dict) and v.get("Secure") is False
        ]
    insecure = sorted(set(insecure))
    yield _r("2.5", Status.WARN if insecure else Status.PASS, ", ".join(insecure) or "none")
    driver = str(info.get("Driver", "")) if isinstance(info, dict) else str(cfg.get("storage-driver", ""))
    yield _r("2.6", Status.WARN if driver == "aufs" else Status.PASS, f"storage driver {driver or 'unknown'}")
    tcp = [h for h in cfg.items("hosts") if str(h).startswith("tcp://")]
    if not tcp:
        yield _r("2.7", Status.INFO, "the daemon does not listen on TCP")
    elif cfg.flag("tlsverify", False) and all(cfg.get(k) for k in ("tlscacert", "tlscert", "tlskey")):
        yield _r("2.7", Status.PASS, f"TCP {', '.join(map(str, tcp))} with tlsverify")
    else:
        yield _r("2.7", Status.WARN, f"TCP listener {', '.join(map(str, tcp))} without TLS verification")
    ulimits = (
        cfg.items("default-ulimits")
        if not isinstance(cfg.get("default-ulimits"), dict)
        else [cfg.get("default-ulimits")]
    )
    yield _r("2.8", Status.PASS if ulimits else Status.INFO, "set" if ulimits else "default ulimits not set")
    userns = bool(cfg.get("userns-remap")) or any("name=userns" in o for o in secopts)
    yield _r(
        "2.9",
        Status.PASS if userns else Status.WARN,
        "userns-remap set" if userns else "userns-remap not set",
    )
    parent = cfg.get("cgroup-parent")
    yield _r(
        "2.10", Status.INFO if parent else Status.PASS, f"cgroup-parent={parent}" if parent else "default"
    )
    basesize = [o for o in cfg.items("storage-opts") if "dm.basesize" in str(o)]
    yield _r("2.11", Status.WARN if basesize else Status.PASS, ", ".join(map(str, basesize)) or "not changed")
    authz = cfg.items("authorization-plugins")
    if isinstance(info, dict):
        authz += (info.get("Plugins") or {}).get("Authorization") or []
    yield _r(
        "2.12", Status.PASS if authz else Status.WARN, ", ".join(map(str, authz)) or "no authorization plugin"
    )
    log_driver = (
        str(info.get("LoggingDriver", ""))
        if isinstance(info, dict)
        else str(cfg.get("log-driver", "json-file"))
    )
    local = log_driver in ("", "json-file", "local", "none")
    yield _r("2.13", Status.WARN if local else Status.PASS, f"log driver {log_driver or 'json-file'}")
    nnp = cfg.flag("no-new-privileges", False)
    yield _r("2.14", Status.PASS if nnp else Status.WARN, f"no-new-privileges={nnp}")
    live = (
        info.get("LiveRestoreEnabled") is True if isinstance(info, dict) else cfg.flag("live-restore", False)
    )
    yield _r("2.15", Status.PASS if live else Status.WARN, f"live-restore={live}")
    proxy = cfg.flag("userland-proxy", True)
    yield _r("2.16", Status.WARN if proxy else Status.PASS, f"userland-proxy={proxy}")
    seccomp = cfg.get("seccomp-profile")
    yield _r(
        "2.17",
        Status.PASS if seccomp else Status.INFO,
        f"seccomp-profile={seccomp}" if seccomp else "default profile",
    )
    experimental = (
        info.get("ExperimentalBuild") is True if isinstance(info, dict) else cfg.flag("experimental", False)
    )
    yield _r("2.18", Status.WARN if experimental else Status.PASS, f"experimental={experimental}")


def _perm_checks(fs: RootFS, owner_id: str, mode_id: str, path: str | None, label: str, max_mode: int,
                 gids: tuple[int, ...] = (0,)) -> Iterator[CheckResult]:  # fmt: skip
    st = _stat(fs, path) if path else None
    if path is None or st is None:
        yield _r(owner_id, Status.INFO, f"{label} not found")
        yield _r(mode_id, Status.INFO, f"{label} not found")
        return
    owner = f"{st.st_uid}:{st.st_gid}"
    ok_owner = st.st_uid == 0 and st.st_gid in gids
    yield _r(owner_id, Status.PASS if ok_owner else Status.WARN, f"{path} owned by {owner}")
    mode = st.st_mode & 0o7777
    yield _r(mode_id, Status.PASS if mode & ~max_mode == 0 else Status.WARN, f"{path} mode {mode:04o}")


def _section3(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    fs, cfg = inp.fs, inp.daemon
    yield from _perm_checks(fs, "3.1", "3.2", find_unit(fs, "docker.service"), "docker.service", 0o644)
    yield from _perm_checks(fs, "3.3", "3.4", find_unit(fs, "docker.socket"), "docker.socket", 0o644)
    yield from _perm_checks(fs, "3.5", "3.6", "/etc/docker", "/etc/docker", 0o755)
    certs = _files_below(fs, "/etc/docker/certs.d")
    if not certs:
        yield _r("3.7", Status.INFO, "no /etc/docker/certs.d certificates")
        yield _r("3.8", Status.INFO, "no /etc/docker/certs.d certificates")
    else:
        bad_owner = [p for p, st in certs if st.st_uid != 0 or st.st_gid != 0]
        bad_mode = [p for p, st in certs if st.st_mode & 0o7777 & ~0o444]
        yield _r(
            "3.7", Status.WARN if bad_owner else Status.PASS, ", ".join(bad_owner) or f"{len(certs)} files"
        )
        yield _r(
            "3.8", Status.WARN if bad_mode else Status.PASS, ", ".join(bad_mode) or f"{len(certs)} files"
        )
    for key, (owner_id, mode_id, max_mode) in {"tlscacert": ("3.9", "3.10", 0o444),
                                               "tlscert": ("3.11", "3.12", 0o444),
                                               "tlskey": ("3.13", "3.14", 0o400)}.items():  # fmt: skip
        path = cfg.get(key)
        if not path:
            yield _r(owner_id, Status.INFO, f"{key} not configured")
            yield _r(mode_id, Status.INFO, f"{key} not configured")
        else:
            yield from _perm_checks(fs, owner_id, mode_id, str(path), key, max_mode)
    group = group_entry(fs, "docker")
    sock = next((p for p in DOCKER_SOCKETS if _stat(fs, p) is not None), None)
    gids = (group[0],) if group else (0,)
    yield from _perm_checks(fs, "3.15", "3.16", sock, "docker.sock", 0o660, gids)
    yield from _perm_checks(fs, "3.17", "3.18", "/etc/docker/daemon.json", "/etc/docker/daemon.json", 0o644)
    yield from _perm_checks(fs, "3.19", "3.20", "/etc/default/docker", "/etc/default/docker", 0o644)
    yield from _perm_checks(fs, "3.21", "3.22", "/etc/sysconfig/docker", "/etc/sysconfig/docker", 0o644)
    yield from _perm_checks(fs, "3.23", "3.24", "/run/containerd/containerd.sock", "containerd.sock", 0o660)


def _files_below(fs: RootFS, top: str, limit: int = 1000) -> list[tuple[str, os.stat_result]]:
    out = []
    try:
        for path, st in fs.walk(top, max_entries=limit):
            if stat.S_ISREG(st.st_mode):
                out.append((path.decode("utf-8", "replace"), st))
    except (UnsafePath, OSError):
        return []
    return out


def _cid(container: dict[str, Any]) -> str:
    return "container:" + str(container.get("Id", ""))


def _label(container: dict[str, Any]) -> str:
    return f"{str(container.get('Name', '')).lstrip('/')} ({str(container.get('Id', ''))[:12]})"


def _section4(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    if isinstance(inp.containers, NotAvailable):
        yield _r("4.1", Status.INFO, f"cannot decide: {inp.containers.reason}")
    else:
        for c in inp.containers:
            user = str((c.get("Config") or {}).get("User") or "")
            root = user in ("", "0", "root") or user.startswith(("0:", "root:"))
            yield _r("4.1", Status.WARN if root else Status.PASS,
                     f"{_label(c)} runs as {user or 'root (no user set)'}", _cid(c))  # fmt: skip
    for check_id in ("4.2", "4.3", "4.4", "4.5"):
        yield _r(check_id, Status.NOTE, "manual check")
    if isinstance(inp.images, NotAvailable):
        for check_id in ("4.6", "4.7", "4.9"):
            yield _r(check_id, Status.INFO, f"cannot decide: {inp.images.reason}")
    else:
        for image in inp.images:
            iid = str(image.get("Id", ""))
            subject = "image:" + iid
            name = ", ".join(image.get("RepoTags") or []) or iid[7:19]
            health = (image.get("Config") or {}).get("Healthcheck")
            yield _r("4.6", Status.PASS if health else Status.WARN,
                     f"{name}: {'HEALTHCHECK set' if health else 'no HEALTHCHECK'}", subject)  # fmt: skip
            history = inp.histories.get(iid, [])
            lines = [str(h.get("CreatedBy") or "") for h in history]
            alone = [ln for ln in lines if _update_alone(ln)]
            yield _r("4.7", Status.INFO if alone else Status.PASS,
                     f"{name}: " + ("; ".join(a[:200] for a in alone) or "no update alone"), subject)  # fmt: skip
            adds = [ln for ln in lines if re.search(r"#\(nop\)\s*ADD\b", ln) or ln.startswith("ADD ")]
            yield _r("4.9", Status.INFO if adds else Status.PASS,
                     f"{name}: " + ("; ".join(a[:200] for a in adds) or "no ADD"), subject)  # fmt: skip
    for check_id in ("4.8", "4.10", "4.11", "4.12"):
        yield _r(check_id, Status.NOTE, "manual check (forensics scan lint decides 4.8 and 4.10 per image)")


_UPDATE = re.compile(r"\b(apt-get|apt|apk|yum|dnf|zypper)\s+(update|upgrade)\b")
_INSTALL = re.compile(r"\b(install|add)\b")


def _update_alone(line: str) -> bool:
    return bool(_UPDATE.search(line)) and not _INSTALL.search(line)


def _mounts(c: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in c.get("Mounts") or [] if isinstance(m, dict)]


def _security_opt(c: dict[str, Any]) -> list[str]:
    return [str(o) for o in (c.get("HostConfig") or {}).get("SecurityOpt") or []]


def _container_checks(c: dict[str, Any], inp: BenchInputs) -> Iterator[tuple[str, Status, str]]:
    hc: dict[str, Any] = c.get("HostConfig") or {}
    cfg: dict[str, Any] = c.get("Config") or {}
    secopts = _security_opt(c)
    host_secopts = _security_options(inp.info)
    apparmor_host = any("name=apparmor" in o for o in host_secopts)
    profile = str(c.get("AppArmorProfile") or "")
    if any(o.replace(":", "=") == "apparmor=unconfined" for o in secopts) or profile == "unconfined":
        yield "5.1", Status.WARN, "AppArmor profile: unconfined"
    elif not apparmor_host:
        yield "5.1", Status.INFO, "AppArmor is not enabled on the host"
    elif not profile:
        yield "5.1", Status.WARN, "no AppArmor profile"
    else:
        yield "5.1", Status.PASS, f"AppArmor profile {profile}"
    if not any("name=selinux" in o for o in host_secopts):
        yield "5.2", Status.INFO, "SELinux is not enabled on the host"
    else:
        labels = [o for o in secopts if o.startswith("label")]
        yield "5.2", Status.PASS if labels else Status.WARN, ", ".join(labels) or "no SELinux options"
    caps = [str(x) for x in hc.get("CapAdd") or []]
    yield (
        "5.3",
        Status.WARN if caps else Status.PASS,
        f"CapAdd: {', '.join(caps)}" if caps else "no capabilities added",
    )
    yield (
        "5.4",
        Status.WARN if hc.get("Privileged") else Status.PASS,
        f"Privileged={bool(hc.get('Privileged'))}",
    )
    sensitive = []
    sockets = []
    for m in _mounts(c):
        source = str(m.get("Source") or "").rstrip("/") or "/"
        rw = "rw" if m.get("RW", True) else "ro"
        if source in SENSITIVE_HOST_PATHS:
            sensitive.append(f"{source} -> {m.get('Destination')} ({rw})")
        if source.endswith("docker.sock") or str(m.get("Destination") or "").endswith("docker.sock"):
            sockets.append(f"{source} -> {m.get('Destination')} ({rw})")
    yield "5.5", Status.WARN if sensitive else Status.PASS, "; ".join(sensitive) or "none"
    top = inp.tops.get(str(c.get("Id", "")))
    if isinstance(top, dict):
        procs = [" ".join(map(str, p)) for p in top.get("Processes") or []]
        sshd = [p for p in procs if re.search(r"\bsshd\b", p)]
        yield "5.6", Status.WARN if sshd else Status.PASS, "; ".join(sshd)[:500] or "no sshd process"
    else:
        yield "5.6", Status.INFO, f"processes unknown: {na_text(top) if top is not None else 'not running'}"
    ports = (c.get("NetworkSettings") or {}).get("Ports") or {}
    bindings = [(cport, b) for cport, bs in ports.items() for b in (bs or []) if isinstance(b, dict)]
    low = [
        f"{b.get('HostPort')}->{cport}"
        for cport, b in bindings
        if str(b.get("HostPort", "")).isdigit() and int(b["HostPort"]) < 1024
    ]
    yield "5.7", Status.WARN if low else Status.PASS, ", ".join(low) or "no privileged host port"
    yield "5.8", Status.NOTE, f"published: {', '.join(sorted(ports))}" if ports else "no ports"
    net = str(hc.get("NetworkMode") or "")
    yield "5.9", Status.WARN if net == "host" else Status.PASS, f"NetworkMode={net}"
    yield "5.10", Status.WARN if not hc.get("Memory") else Status.PASS, f"Memory={hc.get('Memory') or 0}"
    shares = hc.get("CpuShares") or 0
    yield "5.11", Status.WARN if shares in (0, 1024) else Status.PASS, f"CpuShares={shares}"
    ro = bool(hc.get("ReadonlyRootfs"))
    yield "5.12", Status.PASS if ro else Status.WARN, f"ReadonlyRootfs={ro}"
    wild = [
        f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"  # noqa: S104
        for _, b in bindings
        if b.get("HostIp") in ("", "0.0.0.0", "::", None)  # noqa: S104
    ]
    yield "5.13", Status.WARN if wild else Status.PASS, ", ".join(wild) or "no wildcard binding"
    policy = hc.get("RestartPolicy") or {}
    name, count = str(policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0)
    ok = name in ("no", "") or (name == "on-failure" and 0 < count <= 5)
    yield (
        "5.14",
        Status.PASS if ok else Status.WARN,
        f"restart policy {name}" + (f":{count}" if count else ""),
    )
    for check_id, key in (
        ("5.15", "PidMode"),
        ("5.16", "IpcMode"),
        ("5.20", "UTSMode"),
        ("5.30", "UsernsMode"),
    ):
        value = str(hc.get(key) or "")
        yield check_id, Status.WARN if value == "host" else Status.PASS, f"{key}={value}"
    devices = [
        f"{d.get('PathOnHost')}->{d.get('PathInContainer')}"
        for d in hc.get("Devices") or []
        if isinstance(d, dict)
    ]
    yield "5.17", Status.WARN if devices else Status.PASS, ", ".join(devices) or "no devices"
    ulimits = hc.get("Ulimits") or []
    yield (
        "5.18",
        Status.INFO if ulimits else Status.PASS,
        f"{len(ulimits)} ulimits set" if ulimits else "defaults",
    )
    shared = [
        str(m.get("Destination"))
        for m in _mounts(c)
        if str(m.get("Propagation") or "") in ("shared", "rshared")
    ]
    yield "5.19", Status.WARN if shared else Status.PASS, ", ".join(shared) or "no shared propagation"
    unconfined = any(o.replace(":", "=") == "seccomp=unconfined" for o in secopts)
    yield (
        "5.21",
        Status.WARN if unconfined else Status.PASS,
        "seccomp=unconfined" if unconfined else "seccomp on",
    )
    yield "5.22", Status.NOTE, "needs the host's audit log of docker exec"
    yield "5.23", Status.NOTE, "needs the host's audit log of docker exec"
    parent = str(hc.get("CgroupParent") or "")
    yield "5.24", Status.WARN if parent else Status.PASS, f"CgroupParent={parent}" if parent else "default"
    nnp = any(o.replace(":", "=") in ("no-new-privileges", "no-new-privileges=true") for o in secopts)
    yield (
        "5.25",
        Status.PASS if nnp else Status.WARN,
        "no-new-privileges set" if nnp else "no-new-privileges missing",
    )
    health = (c.get("State") or {}).get("Health") or cfg.get("Healthcheck")
    yield "5.26", Status.PASS if health else Status.WARN, "health checked" if health else "no healthcheck"
    yield "5.27", Status.INFO, f"image {cfg.get('Image')}"
    pids = hc.get("PidsLimit")
    yield "5.28", Status.PASS if isinstance(pids, int) and pids > 0 else Status.WARN, f"PidsLimit={pids}"
    networks = list(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    yield (
        "5.29",
        Status.WARN if "bridge" in networks else Status.PASS,
        f"networks: {', '.join(networks) or 'none'}",
    )
    yield "5.31", Status.WARN if sockets else Status.PASS, "; ".join(sockets) or "docker.sock not mounted"


def _section5(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    if isinstance(inp.containers, NotAvailable):
        for check in (c for c in BENCH.values() if c.id.startswith("5.")):
            yield result(check, Status.INFO, "host", f"cannot decide: {inp.containers.reason}")
        return
    for c in inp.containers:
        for check_id, status, details in sorted(_container_checks(c, inp), key=lambda t: _order(t[0])):
            yield _r(check_id, status, f"{_label(c)}: {details}", _cid(c))


def _order(check_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in check_id.split("."))


def _section6(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    images = len(inp.images) if isinstance(inp.images, list) else na_text(inp.images)
    yield _r("6.1", Status.INFO, f"{images} images")
    if isinstance(inp.containers, list):
        stopped = sum(1 for c in inp.containers if not (c.get("State") or {}).get("Running"))
        yield _r("6.2", Status.INFO, f"{len(inp.containers)} containers, {stopped} not running")
    else:
        yield _r("6.2", Status.INFO, na_text(inp.containers))


def _section7(inp: BenchInputs, problems: list[str]) -> Iterator[CheckResult]:
    if not isinstance(inp.info, dict):
        for check in (c for c in BENCH.values() if c.id.startswith("7.")):
            yield result(check, Status.INFO, "host", f"cannot decide: {na_text(inp.info)}")
        return
    state = str((inp.info.get("Swarm") or {}).get("LocalNodeState") or "inactive")
    active = state == "active"
    yield _r("7.1", Status.WARN if active else Status.PASS, f"swarm {state}")
    for check in (c for c in BENCH.values() if c.id.startswith("7.") and c.id != "7.1"):
        yield result(check, Status.NOTE if active else Status.PASS, "host",
                     "swarm active: check manually" if active else "swarm not active")  # fmt: skip


# ---------------------------------------------------------------- gathering


def gather(host: Any, exclude_container: str | None, engine_calls: bool = True,
           warn: Callable[[str], None] | None = None) -> BenchInputs:  # fmt: skip
    """Read what the checks need from ``host`` (a HostContext)."""
    problems: list[str] = []
    fs = host.rootfs()
    proc = host.live_proc()
    daemon_json = read_daemon_json(fs, problems)
    cmdline = find_dockerd(proc) if isinstance(proc, Path) else NotAvailable(proc.reason)
    mounts = read_mounts(proc) if isinstance(proc, Path) else NotAvailable(proc.reason)
    engine = host.engine() if engine_calls else NotAvailable("engine not used")
    info: dict[str, Any] | NotAvailable
    version: dict[str, Any] | NotAvailable
    containers: list[dict[str, Any]] | NotAvailable
    images: list[dict[str, Any]] | NotAvailable
    histories: dict[str, list[dict[str, Any]]] = {}
    tops: dict[str, dict[str, Any] | NotAvailable] = {}
    excluded: list[str] = []
    if isinstance(engine, NotAvailable):
        info = version = containers = images = NotAvailable(f"no Engine API: {engine.reason}")
    else:
        info, version = engine.info(), engine.version()
        containers, images = [], []
        own_image = ""
        ids = [str(summary.get("Id", "")) for summary in engine.containers()]
        for cid, inspect in zip(ids, engine.each(engine.inspect_container, ids), strict=True):
            if isinstance(inspect, Exception):  # gone since the listing, or malformed
                if warn:
                    warn(f"inspect of container {cid[:80]!r} failed: {inspect}")
                continue
            if exclude_container and cid == exclude_container:
                own_image = str(inspect.get("Image", ""))
                excluded.append(f"container {cid[:12]}: the appliance itself")
                continue
            containers.append(inspect)
        running = [str(c.get("Id", "")) for c in containers if (c.get("State") or {}).get("Running")]
        for cid, top in zip(running, engine.each(engine.container_top, running), strict=True):
            tops[cid] = NotAvailable(f"top failed: {top}") if isinstance(top, Exception) else top
        used = {str(c.get("Image", "")) for c in containers}
        wanted = []
        for summary in engine.images():
            iid = str(summary.get("Id", ""))
            tags = [t for t in summary.get("RepoTags") or [] if t != "<none>:<none>"]
            if not tags and iid not in used:
                continue  # intermediate build layers: docker-bench looks at `docker images` only
            if own_image and iid == own_image:
                excluded.append(f"image {iid[7:19]}: the appliance's image")
                continue
            wanted.append(iid)

        def image(iid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return engine.inspect_image(iid), engine.image_history(iid)

        for iid, answer in zip(wanted, engine.each(image, wanted), strict=True):
            if isinstance(answer, Exception):
                if warn:
                    warn(f"inspect of image {iid[:80]!r} failed: {answer}")
                continue
            images.append(answer[0])
            histories[iid] = answer[1]
    data_root = (
        str(info.get("DockerRootDir"))
        if isinstance(info, dict) and info.get("DockerRootDir")
        else host.disk().data_root
    )
    for problem in problems:
        if warn:
            warn(problem)
    return BenchInputs(fs, data_root, merge_config(daemon_json, cmdline), mounts, info, version,
                       containers, images, histories, tops, tuple(excluded))  # fmt: skip
