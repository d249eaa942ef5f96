"""What a static binary triage returns: frozen records, nothing else.

The native analysis (:mod:`forensics.binary.analyze`) and the radare2 runner
(:mod:`forensics.binary.r2`) fill these; steps store them, the terminal renders them.
"""

from __future__ import annotations

import dataclasses
import enum

from forensics.records import NotAvailable


@dataclasses.dataclass(frozen=True)
class Problem:
    """Recoverable trouble met while analysing: the result is partial, the run goes on."""

    stage: str
    """Which part of the analysis hit it (``elf.sections``, ``strings``, ``radare2``...)."""
    message: str
    """What went wrong."""


@dataclasses.dataclass(frozen=True)
class Hashes:
    """Digests of the whole file, as read."""

    md5: str | NotAvailable
    sha1: str | NotAvailable
    sha256: str | NotAvailable
    ssdeep: str | NotAvailable
    """Context-triggered piecewise hash (ssdeep format: libfuzzy when the system has it, else ppdeep)."""


@dataclasses.dataclass(frozen=True)
class FileType:
    """What the file is."""

    kind: str
    """Our own answer from the first bytes: ``elf``, ``pe``, ``mach-o``, ``script``, ``data``..."""
    description: str
    """Our own one-line description (e.g. ``ELF 64-bit LSB``)."""
    file_tool: str | NotAvailable
    """What ``file -b`` says of the same bytes, when that tool is on the appliance's PATH."""


@dataclasses.dataclass(frozen=True)
class Section:
    """One entry of the section header table."""

    index: int
    name: str
    type: str
    address: int
    offset: int
    size: int
    flags: str
    """``W`` write, ``A`` alloc, ``X`` exec (as readelf prints them)."""
    entropy: float | NotAvailable
    """Shannon entropy of its bytes in the file, bits per byte (0-8)."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """One entry of the program header table."""

    index: int
    type: str
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: str
    """``RWX`` with ``-`` for a missing permission."""
    entropy: float | NotAvailable


@dataclasses.dataclass(frozen=True)
class Symbol:
    """One symbol from ``.symtab`` or ``.dynsym``."""

    name: str
    kind: str
    """STT_ without the prefix: FUNC, OBJECT, NOTYPE..."""
    bind: str
    """STB_ without the prefix: GLOBAL, LOCAL, WEAK."""
    address: int
    size: int
    defined: bool
    """False for an import (section index UNDEF)."""
    table: str
    """``symtab`` or ``dynsym``."""


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One instruction disassembled at the entry point."""

    address: int
    hex: str
    """The instruction's bytes."""
    mnemonic: str
    operands: str


@dataclasses.dataclass(frozen=True)
class ElfInfo:
    """What the ELF headers, tables and symbols say. Parts that could not be read are
    NotAvailable or empty, with the reason among the report's problems."""

    elf_class: int
    """32 or 64."""
    endianness: str
    """``little`` or ``big``."""
    machine: str
    """e_machine as pyelftools names it (``EM_X86_64``)."""
    arch: str
    """Architecture in words (``x64``, ``AArch64``...)."""
    os_abi: str
    elf_type: str
    """ET_EXEC, ET_DYN, ET_REL, ET_CORE..."""
    entry: int
    pie: bool
    """Position-independent executable (ET_DYN with an interpreter, or DF_1_PIE)."""
    static: bool
    """No interpreter and no dynamic segment: linked statically."""
    stripped: bool
    """No ``.symtab`` section."""
    interpreter: str | NotAvailable
    needed: tuple[str, ...]
    """DT_NEEDED libraries, in order."""
    soname: str | NotAvailable
    runpath: tuple[str, ...]
    """DT_RPATH and DT_RUNPATH entries."""
    section_headers: str
    """``ok``, ``none`` (the file has no section header table) or why it was unusable."""
    sections: tuple[Section, ...]
    segments: tuple[Segment, ...]
    imports: tuple[str, ...]
    """Undefined dynamic symbols (what it takes from its libraries)."""
    exports: tuple[str, ...]
    """Defined global dynamic symbols."""
    functions: tuple[Symbol, ...]
    """Defined FUNC symbols, from .symtab when there is one, else .dynsym."""
    symbols: tuple[Symbol, ...]
    """Every symbol read, bounded by MAX_SYMBOLS."""
    symbols_total: int
    """How many symbols the tables declare (may exceed len(symbols))."""
    entry_disassembly: tuple[Instruction, ...] | NotAvailable


@dataclasses.dataclass(frozen=True)
class FoundString:
    """A printable run of characters in the file."""

    offset: int
    encoding: str
    """``ascii`` or ``utf-16le``."""
    text: str


class IndicatorKind(enum.Enum):
    IPV4 = "ipv4"
    URL = "url"
    DOMAIN = "domain"
    MINING_POOL = "mining-pool"
    MINER = "miner"
    WALLET = "wallet"
    REVERSE_SHELL = "reverse-shell"
    DOWNLOAD_EXEC = "download-exec"
    OFFENSIVE_TOOL = "offensive-tool"
    PERSISTENCE = "persistence"

    @property
    def strong(self) -> bool:
        """A strong kind alone makes the verdict ``suspicious``."""
        return self in _STRONG


_STRONG = frozenset(
    {
        IndicatorKind.MINING_POOL,
        IndicatorKind.MINER,
        IndicatorKind.WALLET,
        IndicatorKind.REVERSE_SHELL,
        IndicatorKind.DOWNLOAD_EXEC,
        IndicatorKind.OFFENSIVE_TOOL,
    }
)


@dataclasses.dataclass(frozen=True)
class Indicator:
    """Something in the strings (or the structure) that a responder looks at."""

    kind: IndicatorKind
    value: str
    """The matched text (or the packer sign's name)."""
    offset: int
    """File offset of the first occurrence (-1 for a structural sign)."""
    count: int
    """How many times it occurs."""
    detail: str = ""
    """Why it matched, when the value alone does not say (e.g. which tool, which wallet)."""


@dataclasses.dataclass(frozen=True)
class Capability:
    """What the binary can likely do, from its imports and strings."""

    name: str
    """``network``, ``exec``, ``ptrace`` or ``persistence``."""
    evidence: tuple[str, ...]
    """The imports, symbols or strings that suggest it."""


@dataclasses.dataclass(frozen=True)
class PackerSign:
    """A sign that the code is packed or compressed."""

    name: str
    """``upx``, ``high-entropy``, ``few-imports``, ``no-section-headers``."""
    detail: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The short answer: ``suspicious``, ``notable`` or ``none``, with the reasons."""

    level: str
    reasons: tuple[str, ...]
    line: str = ""
    """``suspicious: mining pool URL or host, UPX packed`` or ``no indicators`` (derived)."""

    def __post_init__(self) -> None:
        line = "no indicators" if self.level == "none" else f"{self.level}: {', '.join(self.reasons)}"
        object.__setattr__(self, "line", line)

    @property
    def suspicious(self) -> bool:
        return self.level == "suspicious"


@dataclasses.dataclass(frozen=True)
class R2Result:
    """What radare2 said, through r2pipe, beside the native answers (never instead)."""

    status: str
    """``ran``, ``partial`` (timed out or failed after some commands), ``failed`` or ``skipped``."""
    reason: str
    """Why it was skipped or failed; empty when it ran."""
    path: str | NotAvailable
    """The r2 binary used."""
    seconds: float
    commands: dict[str, object]
    """Command (``ij``, ``iij``, ``iEj``, ``izj``, ``aa``, ``aflj``) -> its parsed JSON output."""
    errors: dict[str, str]
    """Command -> why it gave no JSON."""

    @property
    def line(self) -> str:
        if self.status == "skipped":
            return f"radare2: skipped ({self.reason})"
        if self.status == "ran":
            return f"radare2: ran {', '.join(self.commands)} in {self.seconds:.1f}s"
        return f"radare2: {self.status} ({self.reason})"


@dataclasses.dataclass(frozen=True)
class BinaryReport:
    """The whole static triage of one file."""

    source: str
    """What was analysed, in words (host path, container and path, process exe)."""
    size: int
    """File size in bytes."""
    analysed_bytes: int
    """How many bytes the native analysis looked at (the first ones, up to its limit)."""
    hashes: Hashes
    file_type: FileType
    elf: ElfInfo | NotAvailable
    strings_total: int
    """Printable runs found in the analysed bytes."""
    strings: tuple[FoundString, ...]
    """The first MAX_STRINGS of them."""
    indicators: tuple[Indicator, ...]
    capabilities: tuple[Capability, ...]
    packer: tuple[PackerSign, ...]
    verdict: Verdict
    analyses: tuple[str, ...]
    """Which analyses ran: ``native`` always, ``radare2`` when it did."""
    radare2: R2Result
    problems: tuple[Problem, ...]
    """Everything that made this result partial."""
    seconds: float
    """Wall-clock time of the whole triage of this file."""

    @property
    def partial(self) -> bool:
        return bool(self.problems)
