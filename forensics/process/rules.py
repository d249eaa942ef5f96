"""Rules over a process record: each that fires is a Finding with its rule id.

Argv patterns are matched on the whole command line joined with spaces; they are
deliberately narrow (a responder reads every hit), and each rule says what it saw.
"""

from __future__ import annotations

import os
import re

from forensics.findings import Finding, Severity
from forensics.process.inventory import ExeOrigin, ProcessRecord

TEMP_DIRS = ("/tmp/", "/dev/shm/", "/var/tmp/")

MINER = [
    re.compile(r"stratum\d?\+(?:tcp|ssl|tls)://", re.I),
    re.compile(r"(?:^|[/\s])xmrig(?:\s|$)|\bxmr-stak\b|\bcpuminer\b|\bminerd\b|\bnanominer\b", re.I),
    re.compile(r"--donate-level\b"),
    re.compile(r"(?:^|\s)(?:-o|--url)[\s=]+\S+:\d{2,5}\b.*(?:^|\s)(?:-u|--user)[\s=]"),
    re.compile(r"--(?:randomx|cpu-max-threads-hint|coin)\b"),
]
REVERSE_SHELL = [
    re.compile(r"\b(?:ba|z|k|c)?sh\s+-i\b.*(?:/dev/(?:tcp|udp)/|>&|0>&1)"),
    re.compile(r"/dev/(?:tcp|udp)/[^/\s]+/\d+"),
    re.compile(r"\b(?:nc|ncat|netcat)\b.*\s-(?:[a-z]*e|c)\s*\S"),
    re.compile(r"\bsocat\b.*\b(?:exec|system):", re.I),
    re.compile(r"\bpython[\d.]*\b.*\s-c\s.*\bsocket\b.*\b(?:connect|dup2|subprocess|pty)\b", re.S),
    re.compile(r"\bperl\b.*-e\s.*\bsocket\b.*\bexec\b", re.I | re.S),
    re.compile(r"\bmkfifo\b.*\b(?:nc|ncat|netcat|openssl)\b"),
]


def argv_text(record: ProcessRecord) -> str:
    return " ".join(record.cmdline)


def miner_hits(text: str) -> list[str]:
    return [p.pattern for p in MINER if p.search(text)]


def reverse_shell_hits(text: str) -> list[str]:
    return [p.pattern for p in REVERSE_SHELL if p.search(text)]


def comm_matches(record: ProcessRecord) -> bool:
    """The kernel's comm against the exe's basename (and argv[0]/argv[1] for scripts)."""
    if not isinstance(record.exe, str) or not record.comm:
        return True
    comm = record.comm
    names = [os.path.basename(record.exe)]
    names += [os.path.basename(a) for a in record.cmdline[:2] if a]
    return any(name.startswith(comm) or name[:15] == comm or comm.startswith(name) for name in names)


def _where(record: ProcessRecord) -> str:
    if record.container is None:
        return "host"
    name = record.container.name if isinstance(record.container.name, str) else "?"
    return f"container {name} ({record.container.id[:12]})"


def evaluate(record: ProcessRecord, source: str, evidence: tuple[str, ...] = ()) -> list[Finding]:
    """Every rule that fires on ``record``."""
    if record.kernel_thread:
        return []
    subject = f"process:{record.pid}"
    where = _where(record)
    exe = record.exe if isinstance(record.exe, str) else "?"
    text = argv_text(record)
    out: list[Finding] = []

    def add(rule: str, severity: Severity, title: str, details: str) -> None:
        out.append(Finding(rule, severity, title, subject, source, evidence,
                           f"{where}; exe {exe}; argv {text[:300]!r}. {details}"))  # fmt: skip

    if exe.startswith("/memfd:"):
        add("process.memfd-exe", Severity.HIGH, f"pid {record.pid} runs from an anonymous memory file {exe}",
            "A memfd executable never touched disk (fileless); /proc/<pid>/exe still reads it.")  # fmt: skip
    elif record.exe_deleted:
        add("process.deleted-exe", Severity.HIGH, f"pid {record.pid} runs a deleted executable {exe}",
            "The file was removed after start, a common way to hide a dropped binary; "
            "/proc/<pid>/exe still reads it.")  # fmt: skip
    if isinstance(record.exe, str) and record.exe.startswith(TEMP_DIRS):
        add("process.exe-in-temp", Severity.HIGH, f"pid {record.pid} runs {exe} from a temporary directory",
            "Executables under /tmp, /dev/shm or /var/tmp are rarely legitimate.")  # fmt: skip
    if not comm_matches(record):
        add("process.comm-mismatch", Severity.MEDIUM,
            f"pid {record.pid} calls itself {record.comm!r} but runs {os.path.basename(exe)}",
            "The process name differs from its executable: renamed to blend in?")  # fmt: skip
    miner = miner_hits(text)
    if miner:
        add("process.miner-argv", Severity.HIGH, f"pid {record.pid} has a crypto-miner-like command line",
            f"Matched: {', '.join(miner)}.")  # fmt: skip
    shell = reverse_shell_hits(text)
    if shell:
        add("process.reverse-shell-argv", Severity.CRITICAL,
            f"pid {record.pid} has a reverse-shell-like command line", f"Matched: {', '.join(shell)}.")  # fmt: skip
    origin = record.exe_origin
    if record.container is not None and isinstance(origin, ExeOrigin) and not origin.from_image:
        add("process.exe-not-in-image", Severity.HIGH,
            f"pid {record.pid} in {where} runs {exe}, which its image does not hold",
            f"Found in: {origin.layer} (not an image layer).")  # fmt: skip
    return out
