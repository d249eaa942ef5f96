"""Native ELF triage: headers, sections, segments, dynamic info, symbols, entry code.

The bytes are the suspect's. Every table is read with a bound (:data:`MAX_SECTIONS`,
:data:`MAX_SEGMENTS`, :data:`MAX_SYMBOLS`, :data:`MAX_DYN_TAGS`), every region is cut at
the end of the data, and every stage runs inside the caller's :class:`Budget`. A stage that
fails records a :class:`Problem` and leaves its part empty; the others still run. When
the section header table is unusable (bogus ``e_shoff``, huge ``e_shnum``, broken string
table), the program headers still give segments, interpreter, libraries and entry code.

pyelftools parses the headers and symbol tables. The dynamic table is read here with
``struct``: pyelftools walks it until DT_NULL, and a table without one would have it
parse to the end of the file.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterable
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from forensics.binary.budget import Budget, entropy
from forensics.binary.records import ElfInfo, Instruction, Section, Segment, Symbol
from forensics.records import NotAvailable

MAX_SECTIONS = 4096
"""Section headers read at most (real executables have tens)."""
MAX_SEGMENTS = 512
MAX_SYMBOLS = 50_000
"""Symbols kept per table."""
MAX_DYN_TAGS = 4096
MAX_NAME = 4096
"""Longest string (interpreter, library, symbol name) read."""
ENTRY_INSTRUCTIONS = 32
MAX_ERRORS = 8
"""Header reads that may fail before a table is given up."""

DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 0, 1, 5, 14, 15, 29, 0x6FFFFFFB
DT_GNU_HASH = 0x6FFFFEF5
DF_1_PIE = 0x08000000
MAX_HASH_BUCKETS = 1 << 20
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3

_ARCH = {
    "EM_X86_64": "x64",
    "EM_386": "x86",
    "EM_AARCH64": "AArch64",
    "EM_ARM": "ARM",
    "EM_MIPS": "MIPS",
    "EM_PPC": "PowerPC",
    "EM_PPC64": "PowerPC64",
    "EM_RISCV": "RISC-V",
    "EM_S390": "s390",
    "EM_SPARCV9": "SPARC64",
    "EM_LOONGARCH": "LoongArch",
}


def _name(value: Any) -> str:
    """pyelftools gives enum names as str and unknown values as int."""
    return value if isinstance(value, str) else f"0x{int(value):x}"


def _cstring(data: bytes, offset: int) -> str:
    if offset < 0 or offset >= len(data):
        raise ELFError(f"string offset {offset:#x} is outside the file")
    end = data.find(b"\0", offset, offset + MAX_NAME)
    raw = data[offset : end if end >= 0 else offset + MAX_NAME]
    return raw.decode("utf-8", "backslashreplace")


class _Reader:
    """One pass over one ELF image; collects problems into the budget."""

    def __init__(self, data: bytes, budget: Budget) -> None:
        self.data = data
        self.budget = budget
        self.elf = ELFFile(io.BytesIO(data))
        self.little = self.elf.little_endian
        self.bits = self.elf.elfclass
        self.loads: list[tuple[int, int, int]] = []
        """(vaddr, offset, filesz) of each PT_LOAD, for address -> offset."""

    def problem(self, stage: str, message: str) -> None:
        self.budget.problem(stage, message)

    # --- program headers -----------------------------------------------------------------

    def segments(self) -> tuple[list[Segment], list[Any]]:
        headers = []
        try:
            count = self.elf.num_segments()
        except Exception as exc:
            self.problem("elf.segments", f"program header count unreadable: {exc}")
            return [], []
        if count > MAX_SEGMENTS:
            self.problem("elf.segments", f"e_phnum {count} is over {MAX_SEGMENTS}: first {MAX_SEGMENTS} read")
        out = []
        errors = 0
        for index in range(min(count, MAX_SEGMENTS)):
            try:
                hdr = self.elf._get_segment_header(index)  # raw header: no per-type parsing
            except Exception as exc:
                errors += 1
                self.problem("elf.segments", f"program header {index}: {exc}")
                if errors >= MAX_ERRORS:
                    break
                continue
            headers.append(hdr)
            kind = _name(hdr["p_type"])
            flags = int(hdr["p_flags"])
            offset, filesz = int(hdr["p_offset"]), int(hdr["p_filesz"])
            region = self.data[offset : offset + filesz] if offset < len(self.data) else b""
            if kind == "PT_LOAD":
                self.loads.append((int(hdr["p_vaddr"]), offset, len(region)))
            perms = ("R" if flags & 4 else "-") + ("W" if flags & 2 else "-") + ("X" if flags & 1 else "-")
            out.append(
                Segment(
                    index=index,
                    type=kind,
                    offset=offset,
                    vaddr=int(hdr["p_vaddr"]),
                    filesz=filesz,
                    memsz=int(hdr["p_memsz"]),
                    flags=perms,
                    entropy=round(entropy(region), 3) if region else NotAvailable("no bytes in the file"),
                )
            )
        return out, headers

    def offset_of(self, address: int) -> int | None:
        for vaddr, offset, size in self.loads:
            if vaddr <= address < vaddr + size:
                return offset + (address - vaddr)
        return None

    def interpreter(self, headers: list[Any]) -> str | NotAvailable:
        for hdr in headers:
            if _name(hdr["p_type"]) == "PT_INTERP":
                try:
                    return _cstring(self.data, int(hdr["p_offset"]))
                except ELFError as exc:
                    self.problem("elf.interpreter", str(exc))
                    return NotAvailable(str(exc))
        return NotAvailable("no PT_INTERP segment")

    def dynamic(self, headers: list[Any]) -> dict[int, list[int]]:
        """DT tag -> values, read from PT_DYNAMIC with struct, up to DT_NULL or MAX_DYN_TAGS."""
        tags: dict[int, list[int]] = {}
        for hdr in headers:
            if _name(hdr["p_type"]) != "PT_DYNAMIC":
                continue
            fmt = ("<" if self.little else ">") + ("qQ" if self.bits == 64 else "iI")
            size = struct.calcsize(fmt)
            start = int(hdr["p_offset"])
            end = min(start + int(hdr["p_filesz"]), len(self.data))
            for n in range(MAX_DYN_TAGS):
                at = start + n * size
                if at + size > end:
                    self.problem("elf.dynamic", "dynamic table ends without DT_NULL")
                    break
                tag, value = struct.unpack_from(fmt, self.data, at)
                if tag == DT_NULL:
                    tags.setdefault(DT_NULL, []).append(0)
                    break
                tags.setdefault(tag, []).append(value)
            else:
                self.problem("elf.dynamic", f"more than {MAX_DYN_TAGS} dynamic tags: rest ignored")
            break
        return tags

    def dynamic_strings(self, tags: dict[int, list[int]], tag: int) -> list[str]:
        if tag not in tags:
            return []
        strtab = self.offset_of(tags.get(DT_STRTAB, [-1])[0])
        if strtab is None:
            self.problem("elf.dynamic", "DT_STRTAB is not inside any PT_LOAD segment")
            return []
        out = []
        for value in tags[tag][:MAX_DYN_TAGS]:
            try:
                out.append(_cstring(self.data, strtab + value))
            except ELFError as exc:
                self.problem("elf.dynamic", str(exc))
        return out

    # --- section headers -----------------------------------------------------------------

    def sections(self) -> tuple[str, list[Section], list[int]]:
        """(state of the table, sections, indexes of symbol tables)."""
        if self.elf["e_shoff"] == 0:
            return "none", [], []
        try:
            count = int(self.elf.num_sections())
        except Exception as exc:
            self.problem("elf.sections", f"section count unreadable: {exc}")
            return f"unusable: {exc}", [], []
        if count > MAX_SECTIONS:
            self.problem(
                "elf.sections", f"section count {count} is over {MAX_SECTIONS}: first {MAX_SECTIONS} read"
            )
            count = MAX_SECTIONS
        shoff, entsize = int(self.elf["e_shoff"]), int(self.elf["e_shentsize"]) or 1
        fit = max(0, (len(self.data) - shoff) // entsize) if shoff < len(self.data) else 0
        if fit < count:
            self.problem(
                "elf.sections",
                f"section header table ({count} x {entsize} bytes at {shoff:#x}) runs past the end of "
                f"the data ({len(self.data)} bytes): {fit} headers read",
            )
            count = fit
        if count == 0:
            return "unusable: the section header table is outside the file", [], []
        names_ok = True
        try:
            self.elf._section_header_stringtable  # noqa: B018 - probe once: names need it
        except Exception as exc:
            names_ok = False
            self.problem("elf.sections", f"section name table unusable: {exc}")
        out: list[Section] = []
        symtabs: list[int] = []
        errors = 0
        for index in range(count):
            if index % 256 == 0 and self.budget.expired():
                self.problem("elf.sections", f"budget used up after {index} section headers")
                break
            try:
                hdr = self.elf._get_section_header(index)  # raw header; the name separately
            except Exception as exc:
                errors += 1
                self.problem("elf.sections", f"section header {index}: {exc}")
                if errors >= MAX_ERRORS:
                    self.problem("elf.sections", f"gave up after {errors} unreadable section headers")
                    break
                continue
            name = f"<name at {int(hdr['sh_name']):#x}>"
            if names_ok:
                try:
                    name = self.elf._get_section_name(hdr)
                except Exception as exc:
                    self.problem("elf.sections", f"section {index} name: {exc}")
            kind = _name(hdr["sh_type"])
            offset, size = int(hdr["sh_offset"]), int(hdr["sh_size"])
            flags = int(hdr["sh_flags"])
            region = b""
            if kind != "SHT_NOBITS" and offset < len(self.data):
                region = self.data[offset : offset + size]
            if kind in ("SHT_SYMTAB", "SHT_DYNSYM"):
                symtabs.append(index)
            out.append(
                Section(
                    index=index,
                    name=name[:MAX_NAME],
                    type=kind,
                    address=int(hdr["sh_addr"]),
                    offset=offset,
                    size=size,
                    flags=("W" if flags & 1 else "")
                    + ("A" if flags & 2 else "")
                    + ("X" if flags & 4 else ""),
                    entropy=round(entropy(region), 3) if region else NotAvailable("no bytes in the file"),
                )
            )
        state = "ok" if out else "unusable: no section header could be read"
        return state, out, symtabs

    # --- symbols -------------------------------------------------------------------------

    def symbols(self, index: int) -> tuple[list[Symbol], int]:
        try:
            table = self.elf.get_section(index)
            if not isinstance(table, SymbolTableSection):
                raise ELFError(f"section {index} is {_name(table['sh_type'])}, not a symbol table")
            declared = int(table.num_symbols())
            kind = "dynsym" if _name(table["sh_type"]) == "SHT_DYNSYM" else "symtab"
            return self._read_symbols(table.iter_symbols(), kind, f"section {index}"), declared
        except Exception as exc:
            self.problem("elf.symbols", f"symbol table in section {index}: {exc}")
            return [], 0

    def program_view(self) -> ELFFile:
        """The same image with its section header fields zeroed: pyelftools then finds the
        dynamic symbols through the program headers only (its dynamic segment otherwise
        scans every section header first)."""
        patched = bytearray(self.data)
        order = "<" if self.little else ">"
        if self.bits == 64:
            struct.pack_into(order + "Q", patched, 0x28, 0)
            struct.pack_into(order + "HH", patched, 0x3C, 0, 0)
        else:
            struct.pack_into(order + "I", patched, 0x20, 0)
            struct.pack_into(order + "HH", patched, 0x30, 0, 0)
        return ELFFile(io.BytesIO(bytes(patched)))

    def hash_table_sane(self, tags: dict[int, list[int]]) -> bool:
        """pyelftools reads a whole GNU hash table to count symbols: refuse a huge one."""
        if DT_GNU_HASH not in tags:
            return True
        at = self.offset_of(tags[DT_GNU_HASH][0])
        if at is None or at + 16 > len(self.data):
            self.problem("elf.symbols", "DT_GNU_HASH is outside the file")
            return False
        nbuckets, _symoffset, bloom, _shift = struct.unpack_from(
            ("<" if self.little else ">") + "IIII", self.data, at
        )
        if nbuckets > MAX_HASH_BUCKETS or bloom > MAX_HASH_BUCKETS:
            self.problem(
                "elf.symbols", f"GNU hash table with {nbuckets} buckets, {bloom} bloom words: not read"
            )
            return False
        return True

    def dynamic_segment_symbols(self, headers: list[Any]) -> tuple[list[Symbol], int]:
        """Without a usable .dynsym section: the symbols the dynamic segment points at."""
        for index, hdr in enumerate(headers):
            if _name(hdr["p_type"]) != "PT_DYNAMIC":
                continue
            try:
                segment = self.program_view().get_segment(index)
                if not isinstance(segment, DynamicSegment):
                    raise ELFError(f"program header {index} did not parse as a dynamic segment")
                declared = int(segment.num_symbols())
                return self._read_symbols(segment.iter_symbols(), "dynsym", "dynamic segment"), declared
            except Exception as exc:
                self.problem("elf.symbols", f"symbols through the dynamic segment: {exc}")
        return [], 0

    def _read_symbols(self, symbols: Iterable[Any], table: str, where: str) -> list[Symbol]:
        out: list[Symbol] = []
        iterator = iter(itertools.islice(symbols, MAX_SYMBOLS))
        while True:
            if len(out) % 1024 == 0 and self.budget.expired():
                self.problem("elf.symbols", f"{where}: budget used up after {len(out)} symbols")
                break
            try:
                sym = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                self.problem("elf.symbols", f"{where}: symbol {len(out)}: {exc}")
                break
            info = sym["st_info"]
            out.append(
                Symbol(
                    name=str(sym.name)[:MAX_NAME],
                    kind=_name(info["type"]).removeprefix("STT_"),
                    bind=_name(info["bind"]).removeprefix("STB_"),
                    address=int(sym["st_value"]),
                    size=int(sym["st_size"]),
                    defined=sym["st_shndx"] != "SHN_UNDEF",
                    table=table,
                )
            )
        return out

    # --- entry point -----------------------------------------------------------------------

    def disassemble(
        self, entry: int, machine: str, sections: list[Section]
    ) -> tuple[Instruction, ...] | NotAvailable:
        offset = self.offset_of(entry)
        if offset is None:
            for sec in sections:
                if "X" in sec.flags and sec.address <= entry < sec.address + sec.size:
                    offset = sec.offset + (entry - sec.address)
                    break
        if offset is None or offset >= len(self.data):
            return NotAvailable(f"entry point {entry:#x} is not in any loaded part of the file")
        engine = _capstone(machine, self.bits, self.little, entry)
        if isinstance(engine, NotAvailable):
            return engine
        code = self.data[offset : offset + ENTRY_INSTRUCTIONS * 16]
        out = []
        for insn in engine.disasm(code, entry & ~1 if machine == "EM_ARM" else entry):
            out.append(Instruction(insn.address, insn.bytes.hex(), insn.mnemonic, insn.op_str))
            if len(out) >= ENTRY_INSTRUCTIONS:
                break
        if not out:
            return NotAvailable(f"no valid instruction at the entry point {entry:#x}")
        return tuple(out)


def _capstone(machine: str, bits: int, little: bool, entry: int) -> Any:
    import capstone

    endian = capstone.CS_MODE_LITTLE_ENDIAN if little else capstone.CS_MODE_BIG_ENDIAN
    arm64 = getattr(capstone, "CS_ARCH_ARM64", None) or getattr(capstone, "CS_ARCH_AARCH64", None)
    table: dict[str, tuple[Any, int]] = {
        "EM_X86_64": (capstone.CS_ARCH_X86, capstone.CS_MODE_64),
        "EM_386": (capstone.CS_ARCH_X86, capstone.CS_MODE_32),
        "EM_AARCH64": (arm64, capstone.CS_MODE_ARM | endian),
        "EM_ARM": (
            capstone.CS_ARCH_ARM,
            (capstone.CS_MODE_THUMB if entry & 1 else capstone.CS_MODE_ARM) | endian,
        ),
        "EM_MIPS": (
            capstone.CS_ARCH_MIPS,
            (capstone.CS_MODE_MIPS64 if bits == 64 else capstone.CS_MODE_MIPS32) | endian,
        ),
        "EM_PPC": (capstone.CS_ARCH_PPC, capstone.CS_MODE_32 | endian),
        "EM_PPC64": (capstone.CS_ARCH_PPC, capstone.CS_MODE_64 | endian),
    }
    riscv = getattr(capstone, "CS_ARCH_RISCV", None)
    if riscv is not None:
        table["EM_RISCV"] = (riscv, capstone.CS_MODE_RISCV64 if bits == 64 else capstone.CS_MODE_RISCV32)
    if machine not in table or table[machine][0] is None:
        return NotAvailable(f"no disassembler set up for {machine}")
    arch, mode = table[machine]
    try:
        return capstone.Cs(arch, mode)
    except capstone.CsError as exc:
        return NotAvailable(f"capstone cannot disassemble {machine}: {exc}")


def analyse_elf(data: bytes, budget: Budget) -> ElfInfo | NotAvailable:
    """Read what ``data`` (an ELF image, possibly truncated or malformed) says of itself."""
    try:
        reader = _Reader(data, budget)
        header = reader.elf.header
        machine = _name(header["e_machine"])
        elf_type = _name(header["e_type"])
        entry = int(header["e_entry"])
        os_abi = _name(header["e_ident"]["EI_OSABI"])
    except Exception as exc:
        budget.problem("elf.header", f"ELF header unreadable: {exc}")
        return NotAvailable(f"ELF header unreadable: {exc}")

    segments, headers = reader.segments() if budget.allows("elf.segments") else ([], [])
    if not headers and elf_type in ("ET_EXEC", "ET_DYN"):
        phnum = int(header["e_phnum"])
        budget.problem(
            "elf.segments", f"an executable without a readable program header (e_phnum {phnum:#x})"
        )
    interpreter = reader.interpreter(headers)
    tags = reader.dynamic(headers) if budget.allows("elf.dynamic") else {}
    needed = tuple(reader.dynamic_strings(tags, DT_NEEDED))
    sonames = reader.dynamic_strings(tags, DT_SONAME)
    runpath = tuple(reader.dynamic_strings(tags, DT_RPATH) + reader.dynamic_strings(tags, DT_RUNPATH))
    flags_1 = tags.get(DT_FLAGS_1, [0])[0]

    state, sections, symtab_indexes = (
        reader.sections() if budget.allows("elf.sections") else ("skipped", [], [])
    )
    symbols: list[Symbol] = []
    total = 0
    if budget.allows("elf.symbols"):
        for index in symtab_indexes:
            read, declared = reader.symbols(index)
            symbols.extend(read)
            total += declared
        dynsym_read = any(s.table == "dynsym" for s in symbols)
        if not dynsym_read and DT_NULL in tags and reader.hash_table_sane(tags):
            # Only with a terminated dynamic table: pyelftools walks it up to DT_NULL.
            read, declared = reader.dynamic_segment_symbols(headers)
            symbols.extend(read)
            total += declared

    has_symtab = any(s.type == "SHT_SYMTAB" for s in sections)
    dynsym = [s for s in symbols if s.table == "dynsym" and s.name]
    imports = tuple(dict.fromkeys(s.name for s in dynsym if not s.defined))
    exports = tuple(dict.fromkeys(s.name for s in dynsym if s.defined and s.bind in ("GLOBAL", "WEAK")))
    pool = [s for s in symbols if s.table == "symtab"] if has_symtab else dynsym
    functions = tuple(s for s in pool if s.kind == "FUNC" and s.defined and s.name)

    disassembly: tuple[Instruction, ...] | NotAvailable = NotAvailable("skipped: budget used up")
    if budget.allows("elf.entry"):
        try:
            disassembly = reader.disassemble(entry, machine, sections)
        except Exception as exc:
            budget.problem("elf.entry", f"disassembly failed: {exc}")
            disassembly = NotAvailable(f"disassembly failed: {exc}")

    has_interp = isinstance(interpreter, str)
    return ElfInfo(
        elf_class=reader.bits,
        endianness="little" if reader.little else "big",
        machine=machine,
        arch=_ARCH.get(machine, reader.elf.get_machine_arch()),
        os_abi=os_abi,
        elf_type=elf_type,
        entry=entry,
        pie=elf_type == "ET_DYN" and (has_interp or bool(flags_1 & DF_1_PIE)),
        static=elf_type in ("ET_EXEC", "ET_DYN") and not has_interp and not needed,
        stripped=not has_symtab,
        interpreter=interpreter,
        needed=needed,
        soname=sonames[0] if sonames else NotAvailable("no DT_SONAME"),
        runpath=runpath,
        section_headers=state,
        sections=tuple(sections),
        segments=tuple(segments),
        imports=imports,
        exports=exports,
        functions=functions,
        symbols=tuple(symbols),
        symbols_total=total,
        entry_disassembly=disassembly,
    )
