"""volatility3 over a full memory image (raw, or the ELF core of QEMU's dump-guest-memory).

Each plugin runs through volatility3's Python framework API in a child process of its
own (``python -m forensics.memory.volatility``), started with :func:`forensics.tools.run`,
so a plugin that hangs is killed at its timeout and the next one still runs. The child
never touches the network: volatility's offline switch is set, its symbol path holds only
the directories given (``--symbols``, ``FORENSICS_VOL_SYMBOLS``) and the package's own,
its cache lives in a private temporary directory removed afterwards, and where the kernel
lets us the child runs in an empty network namespace (``unshare -n``); the analysis
records which of these held.

``banners.Banners`` always runs first: its kernel banners say which symbols a Linux plugin
needs. A ``linux.*`` plugin runs only when an ISF symbol table in the given directories
carries the same ``linux_banner``; otherwise it is recorded as skipped, with the banner and
how to make the table (dwarf2json over the matching ``linux-image-*-dbg`` package).
Rows come from walking the plugin's TreeGrid, one JSON object per row (bounded).
"""

from __future__ import annotations

import base64
import bz2
import dataclasses
import enum
import gzip
import hashlib
import io
import json
import lzma
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from forensics.errors import EnvironmentProblem, NotFound
from forensics.records import NotAvailable
from forensics.tools import run, which

BANNERS = "banners.Banners"
LINUX_DEFAULTS = ("linux.pslist.PsList", "linux.bash.Bash", "linux.lsmod.Lsmod")
SYMBOLS_ENV = "FORENSICS_VOL_SYMBOLS"
PLUGIN_TIMEOUT = 600.0
MAX_ROWS = 100_000
MAX_ISF_FILES = 2_000
ISF_EXTENSIONS = (".json", ".json.xz", ".json.gz", ".json.bz2")
MAX_ISF_BYTES = 1 << 30
"""Bound on one decompressed ISF file (a Linux kernel's is some 10-100 MiB)."""

SYMBOLS_HINT = (
    "Make an ISF symbol table for this kernel with dwarf2json "
    "(https://github.com/volatilityfoundation/dwarf2json) from the vmlinux of the matching debug "
    "package, e.g. `dwarf2json linux --elf usr/lib/debug/boot/vmlinux-<release> > <release>.json` "
    "from linux-image-<release>-dbg, and pass its directory with --symbols (or FORENSICS_VOL_SYMBOLS)."
)


class PluginStatus(enum.Enum):
    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True)
class PluginResult:
    """What one volatility3 plugin gave."""

    plugin: str
    """The plugin's name as volatility lists it, e.g. ``linux.pslist.PsList``."""
    status: PluginStatus
    reason: str
    """Why it was skipped or failed; empty when it ran."""
    columns: list[str]
    """Column names of its TreeGrid."""
    rows: list[dict[str, Any]]
    """One object per row: column name to value, plus ``_depth`` (tree level)."""
    truncated: bool
    """More rows than the bound were produced; the rest are not kept."""
    seconds: float
    messages: str
    """volatility's own warnings (stderr of the child, bounded)."""


@dataclasses.dataclass(frozen=True)
class MemoryImage:
    """The analysed image, identified by its hash (it is not copied into the evidence)."""

    path: str
    size: int
    sha256: str
    format: str
    """``elf`` (e.g. QEMU's dump-guest-memory) or ``raw``."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """volatility3's findings over one memory image."""

    image: MemoryImage
    volatility: str
    """volatility3's version."""
    isolation: str
    """How the network was kept out: ``unshare -n`` or offline settings only (and why)."""
    symbol_dirs: list[str]
    """Directories searched for ISF symbol tables (the package's own always comes after them)."""
    banners: list[str]
    """Distinct kernel banners in the image (``Linux version ...``)."""
    kernel_symbols: str | NotAvailable
    """The ISF file whose ``linux_banner`` matches a banner, or why there is none."""
    results: list[PluginResult]


# ---- parent side -----------------------------------------------------------------------


def symbol_dirs(given: Sequence[str]) -> list[str]:
    """``--symbols`` directories, then those in ``FORENSICS_VOL_SYMBOLS`` (os.pathsep list)."""
    env = [d for d in os.environ.get(SYMBOLS_ENV, "").split(os.pathsep) if d]
    out: list[str] = []
    for d in [*given, *env]:
        if not os.path.isdir(d):
            raise NotFound(f"symbol directory {d} does not exist")
        real = os.path.realpath(d)
        if real not in out:
            out.append(real)
    return out


def describe_image(path: str) -> MemoryImage:
    if not os.path.isfile(path):
        raise NotFound(f"no memory image {path}")
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            size += len(chunk)
    fmt = "elf" if head == b"\x7fELF" else "raw"
    return MemoryImage(os.path.abspath(path), size, digest.hexdigest(), fmt)


def isolation_prefix() -> tuple[list[str], str]:
    """``unshare -n`` when it works here (root or user namespaces), else nothing and why."""
    unshare = which("unshare")
    if isinstance(unshare, NotAvailable):
        return [], f"offline settings only ({unshare.reason})"
    probe = run([unshare, "-n", "true"], timeout=10)
    if not probe.ok:
        return [], f"offline settings only (unshare -n not permitted: {probe.describe()})"
    return [unshare, "-n"], "no network (unshare -n) and offline settings"


def _isf_files(dirs: Iterable[str]) -> Iterator[str]:
    count = 0
    for top in dirs:
        for base, subdirs, files in os.walk(top):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith(ISF_EXTENSIONS):
                    count += 1
                    if count > MAX_ISF_FILES:
                        return
                    yield os.path.join(base, name)


def _open_isf(path: str) -> io.BufferedIOBase:
    if path.endswith(".xz"):
        return lzma.open(path, "rb")
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def isf_linux_banner(path: str) -> bytes | None:
    """The ``linux_banner`` constant an ISF file was made for, if it has one."""
    try:
        with _open_isf(path) as f:
            data = f.read(MAX_ISF_BYTES + 1)
        if len(data) > MAX_ISF_BYTES:
            return None
        doc = json.loads(data)
        encoded = doc["symbols"]["linux_banner"]["constant_data"]
        return base64.b64decode(encoded).rstrip(b"\0").strip()
    except (OSError, EOFError, ValueError, KeyError, TypeError, lzma.LZMAError):
        return None


def matching_isf(dirs: Sequence[str], banners: Sequence[str]) -> str | NotAvailable:
    if not banners:
        return NotAvailable("no Linux kernel banner found in the image")
    wanted = {b.encode("utf-8", "surrogateescape").strip() for b in banners}
    if not dirs:
        return NotAvailable("no symbol directory given (--symbols or " + SYMBOLS_ENV + ")")
    for path in _isf_files(dirs):
        banner = isf_linux_banner(path)
        if banner is not None and banner in wanted:
            return path
    return NotAvailable(f"no ISF file under {', '.join(dirs)} matches the image's kernel banner")


def _run_plugin(
    plugin: str, image: str, dirs: Sequence[str], prefix: Sequence[str], timeout: float, max_rows: int
) -> PluginResult:
    with tempfile.TemporaryDirectory(prefix="forensics-vol-") as cache:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": cache,
            "XDG_CACHE_HOME": cache,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "LC_ALL": "C.UTF-8",
        }
        argv = [*prefix, sys.executable, "-m", "forensics.memory.volatility", "--plugin", plugin,
                "--image", image, "--cache", cache, "--max-rows", str(max_rows)]  # fmt: skip
        for d in dirs:
            argv += ["--symbols", d]
        result = run(argv, timeout=timeout, env=env)
    messages = result.stderr.decode("utf-8", "replace")[-8000:]
    if result.timed_out:
        return PluginResult(plugin, PluginStatus.TIMEOUT, f"killed after {timeout:.0f}s", [], [], False,
                            result.duration, messages)  # fmt: skip
    try:
        doc = json.loads(result.stdout)
        status = PluginStatus(doc["status"])
        return PluginResult(plugin, status, str(doc.get("reason", "")), list(doc.get("columns", [])),
                            list(doc.get("rows", [])), bool(doc.get("truncated")), result.duration, messages)  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return PluginResult(plugin, PluginStatus.ERROR, f"volatility3 gave no result: {result.describe()}",
                            [], [], False, result.duration, messages)  # fmt: skip


def _banners(result: PluginResult) -> list[str]:
    seen: list[str] = []
    for row in result.rows:
        text = str(row.get("Banner", "")).rstrip("\0").strip()
        if text.startswith("Linux version") and text not in seen:
            seen.append(text)
    return seen


def volatility_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volatility3")
    except PackageNotFoundError as exc:
        raise EnvironmentProblem("volatility3 is not installed", hint="pip install volatility3") from exc


def analyze(
    image_path: str,
    plugins: Sequence[str] = (),
    symbols: Sequence[str] = (),
    timeout: float = PLUGIN_TIMEOUT,
    max_rows: int = MAX_ROWS,
) -> Analysis:
    """Run ``banners.Banners`` then ``plugins`` (default: the Linux ones) over the image."""
    version = volatility_version()
    dirs = symbol_dirs(symbols)
    image = describe_image(image_path)
    prefix, isolation = isolation_prefix()
    wanted = [p for p in (plugins or LINUX_DEFAULTS) if p != BANNERS]
    banner_run = _run_plugin(BANNERS, image.path, dirs, prefix, timeout, max_rows)
    banners = _banners(banner_run)
    needs_linux = any(p.startswith("linux.") for p in wanted)
    isf: str | NotAvailable = (
        matching_isf(dirs, banners) if needs_linux else NotAvailable("no Linux plugin asked for")
    )
    results = [banner_run]
    for plugin in wanted:
        if plugin.startswith("linux.") and isinstance(isf, NotAvailable):
            shown = "; ".join(banners) or "none found"
            reason = f"no symbols for this kernel: {isf.reason}. Kernel banner: {shown}. {SYMBOLS_HINT}"
            results.append(PluginResult(plugin, PluginStatus.SKIPPED, reason, [], [], False, 0.0, ""))
            continue
        results.append(_run_plugin(plugin, image.path, dirs, prefix, timeout, max_rows))
    return Analysis(image, version, isolation, dirs, banners, isf, results)


# ---- child side: volatility3's framework in this process -----------------------------------


def _value(value: Any) -> Any:
    """A TreeGrid cell as JSON: absent values say why, bytes are hex."""
    import datetime as dt

    from volatility3.framework import interfaces
    from volatility3.framework.renderers import format_hints

    if isinstance(value, interfaces.renderers.BaseAbsentValue):
        return {"absent": type(value).__name__}
    if isinstance(value, format_hints.MultiTypeData):
        try:
            return bytes(value).decode(value.encoding)
        except (UnicodeDecodeError, LookupError):
            return bytes(value).hex()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _child(args: list[str]) -> dict[str, Any]:
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="forensics.memory.volatility")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--symbols", action="append", default=[])
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS)
    opts = parser.parse_args(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import volatility3.plugins
    import volatility3.symbols
    from volatility3 import framework
    from volatility3.framework import automagic, constants, contexts, exceptions, interfaces, plugins
    from volatility3.framework.configuration import requirements

    constants.OFFLINE = True
    constants.REMOTE_ISF_URL = None
    constants.CACHE_PATH = opts.cache
    constants.PARALLELISM = constants.Parallelism.Off
    own = [os.path.dirname(volatility3.symbols.__file__)]
    volatility3.symbols.__path__ = [*opts.symbols, *own]
    constants.SYMBOL_BASEPATHS = [*opts.symbols, *own]

    class NoFiles(interfaces.plugins.FileHandlerInterface):
        """Plugins that write files get nowhere to write: the default plugins write none."""

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            return len(b)

        def close(self) -> None:
            io.RawIOBase.close(self)

    framework.import_files(volatility3.plugins, True)
    available = framework.list_plugins()
    if opts.plugin not in available:
        return {"status": "error", "reason": f"unknown plugin {opts.plugin}"}
    plugin = available[opts.plugin]
    ctx = contexts.Context()
    ctx.config["automagic.LayerStacker.single_location"] = requirements.URIRequirement.location_from_file(
        opts.image
    )
    magic = automagic.choose_automagic(automagic.available(ctx), plugin)
    try:
        constructed = plugins.construct_plugin(ctx, magic, plugin, "plugins", None, NoFiles)
    except exceptions.UnsatisfiedException as exc:
        unsatisfied = ", ".join(sorted(exc.unsatisfied))
        reason = f"volatility3 could not satisfy: {unsatisfied}"
        if "symbol" in unsatisfied.lower() or "kernel" in unsatisfied.lower():
            reason += f" (no matching symbols). {SYMBOLS_HINT}"
        return {"status": "error", "reason": reason}
    grid = constructed.run()
    columns = [c.name for c in grid.columns]
    rows: list[dict[str, Any]] = []
    state = {"truncated": False}

    def visit(node: Any, acc: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(acc) >= opts.max_rows:
            state["truncated"] = True
            return acc
        row = {name: _value(v) for name, v in zip(columns, node.values, strict=False)}
        row["_depth"] = node.path_depth
        acc.append(row)
        return acc

    grid.populate(visit, rows)
    return {"status": "ok", "columns": columns, "rows": rows, "truncated": state["truncated"]}


def main() -> None:
    try:
        doc = _child(sys.argv[1:])
    except Exception as exc:  # a plugin's failure is one record, not a lost analysis
        doc = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
