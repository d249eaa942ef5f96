"""Indicators in a binary's strings, capability hints from its imports, packer signs, and
the verdict that sums them up.

Patterns run once over all strings joined by newlines (C speed, one pass per pattern),
and each match is mapped back to its string's file offset. Wallet-like strings are kept
only when their checksum holds (Bitcoin base58check and bech32/bech32m); a Monero
address is matched by shape (95 base58 characters starting with 4 or 8), its Keccak
checksum not being in the standard library.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import re
from collections.abc import Callable, Sequence

from forensics.binary.budget import entropy
from forensics.binary.records import (
    Capability,
    ElfInfo,
    FoundString,
    Indicator,
    IndicatorKind,
    PackerSign,
    Verdict,
)
from forensics.records import NotAvailable

MAX_INDICATORS = 500
"""Distinct indicators kept per file."""
HIGH_ENTROPY = 7.2
"""Bits per byte over the whole file above which the code is likely compressed or encrypted."""
HIGH_ENTROPY_REGION = 7.4
"""Bits per byte above which one executable segment or section looks packed."""
FEW_IMPORTS = 5
"""A dynamically linked executable importing fewer functions than this looks like a stub."""

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

_POOL_DOMAINS = (
    "minexmr.com", "supportxmr.com", "moneroocean.stream", "nanopool.org", "xmrpool.eu", "c3pool.com",
    "c3pool.org", "hashvault.pro", "2miners.com", "f2pool.com", "herominers.com", "monerohash.com",
    "dwarfpool.com", "minergate.com", "crypto-pool.fr", "viabtc.com", "antpool.com", "unmineable.com",
    "kryptex.network", "zergpool.com", "mining-dutch.nl", "p2pool.io", "xmrig.com", "nicehash.com",
    "ethermine.org", "sparkpool.com", "minexmr.fr", "pool.hashvault.pro", "gulf.moneroocean.stream",
)  # fmt: skip

_MINER_WORDS = (
    "--donate-level",
    "cryptonight",
    "randomx",
    "mining.subscribe",
    "mining.authorize",
    "mining.submit",
)

_OFFENSIVE_TOOLS = {
    "xmrig": "Monero miner",
    "xmr-stak": "Monero miner",
    "mimikatz": "credential dumper",
    "mimipenguin": "Linux credential dumper",
    "lazagne": "credential dumper",
    "linpeas": "privilege-escalation enumeration",
    "linenum": "privilege-escalation enumeration",
    "linux-exploit-suggester": "privilege-escalation enumeration",
    "pspy": "process snooping",
    "chisel": "TCP/HTTP tunnel",
    "frp": "fast reverse proxy (tunnel)",
    "frpc": "fast reverse proxy client (tunnel)",
    "frps": "fast reverse proxy server (tunnel)",
    "fatedier/frp": "fast reverse proxy (tunnel)",
    "gsocket": "global socket relay (backdoor)",
    "gs-netcat": "global socket relay (backdoor)",
    "ngrok": "tunnel",
    "rathole": "tunnel",
    "ligolo": "tunnel",
    "revsocks": "reverse SOCKS tunnel",
    "kinsing": "cryptojacking malware",
    "kdevtmpfsi": "cryptojacking malware (Kinsing miner)",
    "teamtnt": "cryptojacking group tooling",
    "watchbog": "cryptojacking malware",
    "sysrv": "cryptojacking botnet",
    "tsunami": "IRC botnet",
    "mirai": "botnet",
    "meterpreter": "Metasploit payload",
    "metasploit": "exploitation framework",
    "cobaltstrike": "C2 framework",
    "sliver": "C2 framework",
    "pwncat": "post-exploitation shell",
    "masscan": "mass port scanner",
    "zgrab": "mass scanner",
    "zgrab2": "mass scanner",
    "pnscan": "mass scanner",
    "diamorphine": "LKM rootkit",
    "libprocesshider": "process-hiding preload",
    "deepce": "container escape enumeration",
    "amicontained": "container introspection",
    "botb": "container breakout tool",
    "peirates": "Kubernetes attack tool",
}

_PATTERNS: tuple[tuple[IndicatorKind, str, re.Pattern[str]], ...] = (
    (IndicatorKind.MINING_POOL, "stratum URL", re.compile(r"stratum\d?\+(?:tcp|ssl|tls)://[^\s\"'<>`\\]{2,256}", re.I)),
    (IndicatorKind.REVERSE_SHELL, "shell to /dev/tcp", re.compile(r"/dev/(?:tcp|udp)/[^\s/]{1,255}/\d{1,5}")),
    (IndicatorKind.REVERSE_SHELL, "interactive bash redirected", re.compile(r"\bbash\s+-i\s*[<>]&")),
    (IndicatorKind.REVERSE_SHELL, "netcat running a program", re.compile(r"\b(?:nc|ncat|netcat)(?:\.\w+)?\s[^\n|;&]{0,80}?(?<=\s)-[a-z]*[ec]\s+\S")),
    (IndicatorKind.REVERSE_SHELL, "interactive shell", re.compile(r"/bin/(?:ba|da|z)?sh\s+-i\b")),
    (IndicatorKind.REVERSE_SHELL, "python socket one-liner", re.compile(r"python[\d.]*\s+-c\s*['\"][^'\"]{0,80}import\s+[\w, ]*\b(?:socket|pty)\b")),
    (IndicatorKind.REVERSE_SHELL, "perl socket one-liner", re.compile(r"perl\s+-e\s*['\"][^'\"]{0,40}use\s+Socket")),
    (IndicatorKind.REVERSE_SHELL, "socat exec", re.compile(r"\bsocat\b[^\n]{0,120}\bexec:", re.I)),
    (IndicatorKind.REVERSE_SHELL, "fifo shell", re.compile(r"mkfifo\s+\S+\s*;[^\n]{0,120}\b(?:nc|ncat|telnet|openssl)\b")),
    (IndicatorKind.REVERSE_SHELL, "pty spawn", re.compile(r"pty\.spawn\(\s*['\"]/bin/")),
    (
        IndicatorKind.DOWNLOAD_EXEC,
        "download piped to a shell",
        re.compile(r"\b(?:curl|wget)\s[^|;\n]{1,200}\|\s*(?:sudo\s+)?(?:ba|da)?sh\b"),
    ),
    (
        IndicatorKind.PERSISTENCE,
        "persistence path",
        re.compile(
            r"/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)?\b|/var/spool/cron\b|/etc/rc\.local\b"
            r"|/etc/init\.d/|\.bashrc\b|\.bash_profile\b|authorized_keys\b|/etc/systemd/system\b"
            r"|/lib/systemd/system\b|systemctl\s+enable\b|/etc/ld\.so\.preload\b|/etc/profile\.d/"
        ),
    ),
    (
        IndicatorKind.URL,
        "URL",
        re.compile(r"(?<!\+)(?:https?|ftp|tftp|wss?|tcp|udp|socks[45]h?)://[^\s\"'<>`\\]{2,512}", re.I),
    ),
    (
        IndicatorKind.IPV4,
        "IPv4 address",
        re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)"),
    ),
    (
        IndicatorKind.DOMAIN,
        "domain name",
        re.compile(
            r"(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ru|cn|xyz|top|info|biz|cc|tk"
            r"|pw|su|onion|me|co|uk|fr|nl|br|jp|kr|to|ws|club|online|site|space|pro|stream|network|app|dev"
            r"|cloud|link|live|tech|eu|us|gg|ir|kp)(?![\w-])",
            re.I,
        ),
    ),
)  # fmt: skip

_WALLETS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("Monero address", re.compile(r"(?<![1-9A-HJ-NP-Za-km-z])[48][0-9AB][1-9A-HJ-NP-Za-km-z]{93}(?:[1-9A-HJ-NP-Za-km-z]{11})?(?![1-9A-HJ-NP-Za-km-z])"), lambda _s: True),
    ("Bitcoin address (base58check)", re.compile(r"(?<![1-9A-HJ-NP-Za-km-z])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![1-9A-HJ-NP-Za-km-z])"), lambda s: _base58check(s)),
    ("Bitcoin address (bech32)", re.compile(r"(?<![0-9a-z])bc1[02-9ac-hj-np-z]{11,71}(?![0-9a-z])"), lambda s: _bech32(s)),
)  # fmt: skip

_CAPABILITY_IMPORTS = {
    "network": frozenset(
        [
            "socket",
            "connect",
            "bind",
            "listen",
            "accept",
            "accept4",
            "getaddrinfo",
            "gethostbyname",
            "gethostbyname_r",
            "inet_addr",
            "inet_aton",
            "inet_pton",
            "sendto",
            "recvfrom",
        ]
    ),
    "exec": frozenset(
        [
            "execve",
            "execv",
            "execvp",
            "execvpe",
            "execl",
            "execlp",
            "execle",
            "fexecve",
            "system",
            "popen",
            "posix_spawn",
            "posix_spawnp",
        ]
    ),
    "ptrace": frozenset(["ptrace", "process_vm_readv", "process_vm_writev"]),
}
_CAPABILITY_GO_PREFIXES = {
    "network": ("net.Dial", "net.Listen", "net.(*Dialer).Dial", "syscall.Socket", "syscall.Connect"),
    "exec": (
        "os/exec.Command",
        "os/exec.(*Cmd).Start",
        "syscall.Exec",
        "syscall.forkExec",
        "os.StartProcess",
    ),
    "ptrace": ("syscall.PtraceAttach", "syscall.ptrace"),
}


def _base58check(text: str) -> bool:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    raw = number.to_bytes(25, "big") if number < 1 << 200 else b""
    if len(raw) != 25 or raw[0] not in (0, 5):
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def _bech32(text: str) -> bool:
    """BIP-173 / BIP-350 checksum of a ``bc1`` address."""
    hrp, data = "bc", [_BECH32.index(c) for c in text[3:]]
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check in (1, 0x2BC830A3)


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _find_words(lowered: str, words: Sequence[str]) -> list[tuple[int, str]]:
    """Where each word occurs as a whole word (str.find: far faster than a regex alternation)."""
    hits = []
    for word in words:
        at = lowered.find(word)
        while at >= 0:
            end = at + len(word)
            before = lowered[at - 1] if at else " "
            after = lowered[end] if end < len(lowered) else " "
            if before not in _WORD_CHARS and after not in _WORD_CHARS:
                hits.append((at, word))
            at = lowered.find(word, end)
    return sorted(hits)


class _Collector:
    def __init__(self) -> None:
        self.found: dict[tuple[IndicatorKind, str], Indicator] = {}
        self.full = False

    def add(self, kind: IndicatorKind, value: str, offset: int, detail: str) -> None:
        key = (kind, value)
        prior = self.found.get(key)
        if prior is not None:
            self.found[key] = Indicator(kind, value, prior.offset, prior.count + 1, prior.detail)
        elif len(self.found) < MAX_INDICATORS:
            self.found[key] = Indicator(kind, value, offset, 1, detail)
        else:
            self.full = True


def string_indicators(
    strings: Sequence[FoundString], expired: Callable[[], bool] = lambda: False
) -> tuple[list[Indicator], bool]:
    """Indicators in ``strings``; True as second value when MAX_INDICATORS cut the list."""
    starts: list[int] = []
    parts: list[str] = []
    position = 0
    for found in strings:
        starts.append(position)
        parts.append(found.text)
        position += len(found.text) + 1
    text = "\n".join(parts)
    collector = _Collector()

    def offset_of(at: int) -> int:
        index = bisect.bisect_right(starts, at) - 1
        found = strings[index]
        within = at - starts[index]
        return found.offset + within * (2 if found.encoding == "utf-16le" else 1)

    for kind, what, pattern in _PATTERNS:
        if expired():
            break
        for match in pattern.finditer(text):
            value = match.group()
            if kind is IndicatorKind.IPV4:
                detail = "public" if ipaddress.ip_address(value).is_global else "private or reserved"
            else:
                detail = what
            collector.add(kind, value, offset_of(match.start()), detail)
    lowered = text.lower()
    for kind, words, details in (
        (IndicatorKind.MINING_POOL, _POOL_DOMAINS, {}),
        (IndicatorKind.MINER, _MINER_WORDS, {}),
        (IndicatorKind.OFFENSIVE_TOOL, tuple(_OFFENSIVE_TOOLS), _OFFENSIVE_TOOLS),
    ):
        if expired():
            break
        for at, word in _find_words(lowered, words):
            detail = details.get(
                word, "miner option or algorithm" if kind is IndicatorKind.MINER else "pool host"
            )
            collector.add(kind, text[at : at + len(word)], offset_of(at), detail)
    for what, pattern, valid in _WALLETS:
        if expired():
            break
        for match in pattern.finditer(text):
            if valid(match.group()):
                collector.add(IndicatorKind.WALLET, match.group(), offset_of(match.start()), what)
    return list(collector.found.values()), collector.full


def capabilities(elf: ElfInfo | NotAvailable, indicators: Sequence[Indicator]) -> tuple[Capability, ...]:
    """What it can likely do: from imports (and function names of unstripped static builds)."""
    names: set[str] = set()
    if not isinstance(elf, NotAvailable):
        names.update(elf.imports)
        names.update(f.name for f in elf.functions)
    out = []
    for capability, wanted in _CAPABILITY_IMPORTS.items():
        prefixes = _CAPABILITY_GO_PREFIXES[capability]
        hits = sorted(n for n in names if n in wanted or n.startswith(prefixes))
        if hits:
            out.append(Capability(capability, tuple(hits[:20])))
    persistence = sorted({i.value for i in indicators if i.kind is IndicatorKind.PERSISTENCE})
    if persistence:
        out.append(Capability("persistence", tuple(persistence[:20])))
    return tuple(out)


def packer_signs(data: bytes, elf: ElfInfo | NotAvailable) -> tuple[PackerSign, ...]:
    signs = []
    magic = data.find(b"UPX!")
    banner = b"This file is packed with the UPX" in data
    upx_sections = []
    if not isinstance(elf, NotAvailable):
        upx_sections = [s.name for s in elf.sections if s.name.upper() in ("UPX0", "UPX1", "UPX2", ".UPX")]
    if magic >= 0 or banner or upx_sections:
        found = []
        if magic >= 0:
            found.append(f"UPX! magic at {magic:#x}")
        if banner:
            found.append("UPX banner string")
        if upx_sections:
            found.append("sections " + ", ".join(upx_sections))
        signs.append(PackerSign("upx", "; ".join(found)))
    overall = entropy(data)
    dense = []
    if not isinstance(elf, NotAvailable):
        dense = [
            f"segment {s.index} {s.flags} {s.entropy:.2f}"
            for s in elf.segments
            if "X" in s.flags
            and isinstance(s.entropy, float)
            and s.entropy >= HIGH_ENTROPY_REGION
            and s.filesz >= 4096
        ]
    if overall >= HIGH_ENTROPY or dense:
        signs.append(
            PackerSign("high-entropy", f"file {overall:.2f} bits/byte" + "".join(f"; {d}" for d in dense))
        )
    if not isinstance(elf, NotAvailable) and elf.elf_type in ("ET_EXEC", "ET_DYN"):
        if elf.needed and len(elf.imports) < FEW_IMPORTS:
            signs.append(
                PackerSign(
                    "few-imports", f"{len(elf.imports)} imported symbols from {len(elf.needed)} libraries"
                )
            )
        if elf.section_headers == "none":
            signs.append(PackerSign("no-section-headers", "executable without a section header table"))
    return tuple(signs)


_SUSPICIOUS_REASONS = (
    (IndicatorKind.MINING_POOL, "mining pool URL or host"),
    (IndicatorKind.MINER, "miner strings"),
    (IndicatorKind.WALLET, "wallet address"),
    (IndicatorKind.REVERSE_SHELL, "reverse-shell string"),
    (IndicatorKind.DOWNLOAD_EXEC, "download-and-run string"),
)


def verdict(
    indicators: Sequence[Indicator], caps: Sequence[Capability], packer: Sequence[PackerSign]
) -> Verdict:
    kinds = {i.kind for i in indicators}
    signs = {p.name for p in packer}
    suspicious = [reason for kind, reason in _SUSPICIOUS_REASONS if kind in kinds]
    tools = sorted({i.value.lower() for i in indicators if i.kind is IndicatorKind.OFFENSIVE_TOOL})
    if tools:
        suspicious.append(f"offensive tool name ({', '.join(tools[:5])})")
    if "upx" in signs:
        suspicious.append("UPX packed")
    elif "high-entropy" in signs and signs & {"few-imports", "no-section-headers"}:
        suspicious.append("likely packed (high entropy, " + ", ".join(sorted(signs - {"high-entropy"})) + ")")
    if suspicious:
        return Verdict("suspicious", tuple(suspicious))
    notable = []
    if "high-entropy" in signs:
        notable.append("high entropy")
    if "few-imports" in signs:
        notable.append("few imports")
    if "no-section-headers" in signs:
        notable.append("no section headers")
    if any(c.name == "ptrace" for c in caps):
        notable.append("ptrace use")
    if IndicatorKind.PERSISTENCE in kinds:
        notable.append("persistence paths")
    if any(i.kind is IndicatorKind.IPV4 and i.detail == "public" for i in indicators):
        notable.append("public IP addresses")
    if notable:
        return Verdict("notable", tuple(notable))
    return Verdict("none", ())
