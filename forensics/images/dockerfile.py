"""A Dockerfile reconstructed from an image's history, as dfimage and whaler do it.

Each history entry's ``created_by`` becomes one instruction, oldest first:

- the legacy builder's ``/bin/sh -c #(nop) CMD ["sh"]`` is the instruction after ``#(nop)``;
- ``/bin/sh -c X`` (the shell in force: ``SHELL`` entries change it) is ``RUN X``;
- ``|N A=1 B=2 /bin/sh -c X`` (build args in scope) is ``RUN X``, the args kept as a note;
- BuildKit's ``RUN /bin/sh -c X # buildkit``, ``COPY a /b # buildkit``, ``EXPOSE map[80/tcp:{}]``
  and Go-formatted lists (``CMD ["-c" "x"]``, ``VOLUME [/data]``) are turned into Dockerfile
  syntax;
- ``ADD``/``COPY`` get their layer's digest as a comment above them; ``&&`` chains are broken
  onto continuation lines (outside quotes).

FROM is inferred the way whaler does: a local image whose whole layer chain (its diff_ids) is
a prefix of this image's is its base; the longest such chain wins, tagged images before
untagged ones (the legacy builder leaves untagged intermediate images behind). The base's
own history entries are then left out. With no match, a comment says the base is unknown
and every entry is shown.

Everything in a history is the suspect's text: control characters are escaped and a line
break inside an entry never starts a new instruction.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from forensics.host.disk import is_digest
from forensics.images.source import LayerInfo
from forensics.records import NotAvailable

KEYWORDS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "MAINTAINER",
            "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")  # fmt: skip
DEFAULT_SHELL = ("/bin/sh", "-c")
MAX_ENTRY = 256 * 1024
"""Longest created_by text rendered (a longer one is cut, and says so)."""

_BUILD_ARGS = re.compile(r"\|(\d{1,4})(?: |$)")
_GO_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NOP = re.compile(r"^[^\"'#;&|<>$`]*?#\(nop\)")
"""The legacy builder's no-op marker, after the shell (whatever it was) and nothing else."""


@dataclasses.dataclass(frozen=True)
class LocalImage:
    """An image the host has, as a candidate base."""

    image_id: str
    repo_tags: tuple[str, ...]
    diff_ids: tuple[str, ...]
    history: tuple[str, ...] | None = None
    """Its history's created_by texts, oldest first (None: not read)."""


@dataclasses.dataclass(frozen=True)
class BaseImage:
    """The local image this one was built FROM."""

    image_id: str
    repo_tags: tuple[str, ...]
    layers: int
    """Layers they share (the whole of the base's chain)."""
    history_entries: int
    """Leading history entries that are the base's (left out of the Dockerfile)."""
    history_matches: bool
    """Whether the base's history is exactly the start of this image's."""
    name: str
    """What FROM says: the first tag, else the image id."""


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One history entry turned back into Dockerfile syntax."""

    history_index: int
    keyword: str
    """RUN, COPY, ...; empty when the entry records no command."""
    text: str
    """The instruction as it appears in the Dockerfile (continuation lines included)."""
    created_by: str
    """The entry as recorded (bounded to MAX_ENTRY)."""
    buildkit: bool
    build_args: tuple[str, ...]
    """``KEY=value`` build args recorded in scope (``|N ...``)."""
    empty_layer: bool
    layer_index: int | None
    layer_digest: str | None
    diff_id: str | None
    layer_size: int | None
    created: str
    comment: str
    note: str = ""
    """Why the entry was rendered as it was, when it is not plain."""
    from_base: bool = False
    """The entry belongs to the base image's history (left out of the text)."""


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    ref: str
    image_id: str
    base: BaseImage | None
    base_note: str
    """Why FROM is what it is (or unknown)."""
    instructions: tuple[Instruction, ...]
    """Every history entry, oldest first; ``from_base`` ones are the base's."""
    text: str
    """The Dockerfile."""
    problems: tuple[str, ...]


# --- parsing one created_by --------------------------------------------------------------


def _escape(text: str) -> str:
    """Control characters as ``\\xNN`` (a history is hostile text bound for terminals)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _go_list(body: str) -> list[str] | None:
    """``["a" "b c"]`` (Go's %q of a []string) or ``["a", "b"]`` (JSON) as a list."""
    body = body.strip()
    if not (body.startswith("[") and body.endswith("]")):
        return None
    inner = body[1:-1].strip()
    try:
        value = json.loads(body)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    except ValueError:
        pass
    items = []
    position = 0
    for match in _GO_QUOTED.finditer(inner):
        if inner[position : match.start()].strip():
            return None
        try:
            items.append(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            items.append(match.group(1))
        position = match.end()
    if inner[position:].strip():
        return None
    return items


def _bare_list(body: str) -> list[str] | None:
    """``[/data /logs]`` (Go's %v of a []string) as a list."""
    body = body.strip()
    if body.startswith("[") and body.endswith("]"):
        quoted = _go_list(body)
        if quoted is not None and (quoted or body[1:-1].strip() == ""):
            return quoted
        return body[1:-1].split()
    return None


def _json_list(items: list[str]) -> str:
    return json.dumps(items, ensure_ascii=False)


def _strip_build_args(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``|2 A=1 B=2 rest`` -> (rest, ("A=1", "B=2")); None when there is no such prefix."""
    match = _BUILD_ARGS.match(text)
    if match is None:
        return None
    count = int(match.group(1))
    rest = text[match.end() :]
    args = []
    for _ in range(count):
        head, _, rest = rest.partition(" ")
        if "=" not in head:
            return None
        args.append(head)
    return rest, tuple(args)


def _strip_shell(text: str, shells: Iterable[tuple[str, ...]]) -> str | None:
    for shell in shells:
        prefix = " ".join(shell) + " "
        if text.startswith(prefix):
            return text[len(prefix) :]
    return None


def split_and(command: str) -> list[str]:
    """``a && b`` -> ["a", "b"], leaving ``&&`` inside quotes or after a backslash alone."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(command):
        char = command[i]
        if char == "\\" and quote != "'" and i + 1 < len(command):
            current.append(command[i : i + 2])
            i += 2
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif command.startswith("&&", i):
            parts.append("".join(current).strip())
            current = []
            i += 2
            continue
        current.append(char)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p] or [command.strip()]


def _run_text(command: str) -> str:
    """``RUN`` with ``&&`` chains and recorded line breaks as continuation lines."""
    parts = [" \\\n    ".join(line.rstrip() for line in part.split("\n")) for part in split_and(command)]
    return "RUN " + " \\\n    && ".join(parts)


def _healthcheck(body: str) -> str | None:
    """``&{["CMD-SHELL" "x"] "30s" "5s" "0s" '\\x03'}`` (Go's %v of the config) as Dockerfile."""
    match = re.fullmatch(r"&\{(\[.*?\])((?:\s+\S+)*)\s*\}", body.strip())
    if match is None:
        return None
    test = _go_list(match.group(1))
    if not test:
        return None
    fields = match.group(2).split()
    options = []
    durations = [f.strip('"') for f in fields if f.startswith('"')]
    for name, value in zip(
        ("interval", "timeout", "start-period", "start-interval"), durations, strict=False
    ):
        if value not in ("0s", "0"):
            options.append(f"--{name}={value}")
    retries_text = next((f for f in fields if not f.startswith('"')), "")
    retries = _rune(retries_text)
    if retries:
        options.append(f"--retries={retries}")
    opts = "".join(o + " " for o in options)
    if test[0] == "NONE":
        return "HEALTHCHECK NONE"
    if test[0] == "CMD-SHELL" and len(test) == 2:
        return f"HEALTHCHECK {opts}CMD {test[1]}"
    if test[0] == "CMD":
        return f"HEALTHCHECK {opts}CMD {_json_list(test[1:])}"
    return None


def _rune(text: str) -> int:
    """Go's %v of an int formatted as a rune (``'\\x03'``), or a plain number."""
    if text.isdigit():
        return int(text)
    inner = text.strip("'")
    if inner.startswith("\\x"):
        try:
            return int(inner[2:], 16)
        except ValueError:
            return 0
    return ord(inner) if len(inner) == 1 else 0


def _instruction_text(keyword: str, body: str) -> tuple[str, str]:
    """(Dockerfile text, note) for one legacy-``#(nop)`` or BuildKit-style instruction."""
    body = body.strip()
    if keyword in ("COPY", "ADD"):
        source, sep, dest = body.rpartition(" in ")
        if sep and source:
            return f"{keyword} {source.strip()} {dest.strip()}", ""
        return f"{keyword} {body}", ""
    if keyword in ("CMD", "ENTRYPOINT"):
        items = _go_list(body)
        return (f"{keyword} {_json_list(items)}", "") if items is not None else (f"{keyword} {body}", "")
    if keyword in ("VOLUME", "SHELL"):
        items = _bare_list(body)
        return (f"{keyword} {_json_list(items)}", "") if items is not None else (f"{keyword} {body}", "")
    if keyword == "EXPOSE":
        match = re.fullmatch(r"map\[(.*)\]", body)
        if match:
            ports = [p.removesuffix(":{}") for p in match.group(1).split()]
            return f"EXPOSE {' '.join(ports)}", ""
        return f"EXPOSE {body}", ""
    if keyword == "HEALTHCHECK":
        text = _healthcheck(body)
        if text is not None:
            return text, ""
        return f"# HEALTHCHECK {body}", "healthcheck not understood: shown as recorded"
    if keyword == "RUN":
        return _run_text(body), ""
    return f"{keyword} {body}".rstrip(), ""


@dataclasses.dataclass(frozen=True)
class _Parsed:
    keyword: str
    text: str
    buildkit: bool
    build_args: tuple[str, ...]
    note: str
    shell: tuple[str, ...] | None = None
    """The new shell, for a SHELL entry."""


def parse_created_by(created_by: str, shell: tuple[str, ...] = DEFAULT_SHELL) -> _Parsed:
    """One history entry's command as a Dockerfile instruction."""
    text = created_by.strip()
    buildkit = text.endswith("# buildkit")
    if buildkit:
        text = text[: -len("# buildkit")].rstrip()
    shells = [shell] if shell == DEFAULT_SHELL else [shell, DEFAULT_SHELL]
    if not text:
        return _Parsed("", "", buildkit, (), "no command recorded")
    nop = _NOP.match(text)
    if nop is not None:
        inner = text[nop.end() :].strip()
        keyword, _, body = inner.partition(" ")
        if keyword.upper() in KEYWORDS:
            return _finish(keyword.upper(), body, buildkit, ())
        return _Parsed("", f"# {inner}", buildkit, (), "#(nop) entry with no known instruction")
    args: tuple[str, ...] = ()
    keyword, _, body = text.partition(" ")
    if keyword == "RUN":
        text = body
    elif keyword in KEYWORDS:
        return _finish(keyword, body, buildkit, ())
    stripped = _strip_build_args(text)
    if stripped is not None:
        text, args = stripped
    command = _strip_shell(text, shells)
    if command is not None:
        return _finish("RUN", command, buildkit, args)
    if keyword == "RUN" or args:
        # Exec form: the argv joined by spaces, no shell in front.
        return _finish("RUN", text, buildkit, args, "exec form (argv joined by spaces)")
    return _finish("RUN", text, buildkit, args, "not a builder's entry: shown as RUN")


def _finish(keyword: str, body: str, buildkit: bool, args: tuple[str, ...], note: str = "") -> _Parsed:
    text, extra = _instruction_text(keyword, body)
    new_shell = None
    if keyword == "SHELL":
        items = _bare_list(body)
        new_shell = tuple(items) if items else None
    return _Parsed(keyword, text, buildkit, args, note or extra, new_shell)


# --- FROM: the longest local layer chain that begins this image's ------------------------


def _history_texts(config: dict[str, Any]) -> list[dict[str, Any]]:
    history = config.get("history")
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def infer_base(
    image_id: str,
    diff_ids: list[str],
    history: list[str],
    empties: list[bool],
    candidates: Iterable[LocalImage],
    read_history: Callable[[LocalImage], tuple[str, ...] | None] = lambda c: c.history,
) -> tuple[BaseImage | None, str]:
    """The base image among ``candidates`` (whaler's rule), and a sentence saying why.

    ``history`` and ``empties`` are this image's created_by texts and empty_layer flags.
    """
    scored = []
    for candidate in candidates:
        n = len(candidate.diff_ids)
        if candidate.image_id == image_id or n == 0 or n > len(diff_ids):
            continue
        if tuple(diff_ids[:n]) != candidate.diff_ids:
            continue
        theirs = read_history(candidate)
        prefix = (
            theirs is not None and 0 < len(theirs) <= len(history) and tuple(history[: len(theirs)]) == theirs
        )
        if n == len(diff_ids) and not (prefix and theirs is not None and len(theirs) < len(history)):
            continue  # the same layers, and not a base this image only added metadata to
        scored.append((bool(candidate.repo_tags), n, len(theirs or ()) if prefix else 0, candidate.image_id,
                       candidate, theirs if prefix else None))  # fmt: skip
    if not scored:
        return None, "base image unknown: no other local image's whole layer chain begins this image's layers"
    scored.sort(key=lambda s: s[:4], reverse=True)
    tagged, layers, _, _, best, theirs = scored[0]
    entries = len(theirs) if theirs is not None else _split_by_layers(empties, layers)
    name = sorted(best.repo_tags)[0] if best.repo_tags else best.image_id
    note = f"FROM inferred: {name} ({best.image_id}) has {layers} layer(s), all at the start of this image's"
    if not tagged:
        note += " (an untagged image: perhaps an intermediate image of a legacy build)"
    if theirs is None:
        note += "; its history is not the start of this one's, so the split is by layer count"
    return BaseImage(
        best.image_id, tuple(sorted(best.repo_tags)), layers, entries, theirs is not None, name
    ), note


def _split_by_layers(empties: list[bool], layers: int) -> int:
    """History entries up to and including the one that made the ``layers``-th layer."""
    seen = 0
    for index, empty in enumerate(empties):
        if not empty:
            seen += 1
            if seen == layers:
                return index + 1
    return len(empties)


# --- the reconstruction --------------------------------------------------------------------


def reconstruct(
    ref: str,
    image_id: str,
    config: dict[str, Any],
    layers: list[LayerInfo],
    candidates: Iterable[LocalImage] = (),
    read_history: Callable[[LocalImage], tuple[str, ...] | None] = lambda c: c.history,
    problems: Iterable[str] = (),
) -> Reconstruction:
    """The Dockerfile of an image from its config (history, diff_ids) and its layers."""
    entries = _history_texts(config)
    rootfs = config.get("rootfs")
    diff_ids = [d for d in (rootfs.get("diff_ids") or []) if is_digest(d)] if isinstance(rootfs, dict) else []
    texts = [str(e.get("created_by", ""))[:MAX_ENTRY] for e in entries]
    empties = [e.get("empty_layer") is True for e in entries]
    base, base_note = infer_base(image_id, diff_ids, texts, empties, candidates, read_history)
    out_problems = list(problems)
    if sum(1 for e in empties if not e) != len(layers):
        out_problems.append(f"history has {sum(1 for e in empties if not e)} entries with a layer, "
                            f"the image {len(layers)} layers")  # fmt: skip
    instructions = []
    shell: tuple[str, ...] = DEFAULT_SHELL
    position = 0
    for index, entry in enumerate(entries):
        empty = empties[index]
        layer = None
        if not empty and position < len(layers):
            layer = layers[position]
        if not empty:
            position += 1
        raw = str(entry.get("created_by", ""))
        parsed = parse_created_by(raw[:MAX_ENTRY], shell)
        if parsed.shell:
            shell = parsed.shell
        note = parsed.note
        if len(raw) > MAX_ENTRY:
            note = (note + "; " if note else "") + f"cut at {MAX_ENTRY} of {len(raw)} characters"
        instructions.append(Instruction(
            index, parsed.keyword, _escape(parsed.text), _escape(raw[:MAX_ENTRY]), parsed.buildkit,
            parsed.build_args, empty, layer.index if layer else None, layer.digest if layer else None,
            layer.diff_id if layer else None, layer.size if layer else None, str(entry.get("created", "")),
            _escape(str(entry.get("comment", ""))), note,
            base is not None and index < base.history_entries,
        ))  # fmt: skip
    text = render(ref, image_id, base, base_note, instructions)
    return Reconstruction(ref, image_id, base, base_note, tuple(instructions), text, tuple(out_problems))


def _layer_comment(item: Instruction) -> str:
    size = "" if item.layer_size is None else f" ({item.layer_size} bytes)"
    digest = item.layer_digest or ""
    extra = f" diff_id {item.diff_id}" if item.diff_id and item.diff_id != digest else ""
    return f"# layer {item.layer_index}: {digest}{extra}{size}"


def render(ref: str, image_id: str, base: BaseImage | None, base_note: str, items: list[Instruction]) -> str:
    lines = [f"# Reconstructed by forensics image dockerfile from the history of {_escape(ref)} ({image_id}).",
             "# Build-context files are not in a history: ADD/COPY sources are the builder's content ids."]  # fmt: skip
    if base is not None:
        lines.append(f"# {base_note}")
        lines.append(f"FROM {base.name}")
    else:
        lines.append(f"# {base_note}")
        lines.append("# FROM <unknown>")
    for item in items:
        if item.from_base:
            continue
        if item.note and item.keyword:
            lines.append(f"# {item.note}")
        if item.build_args:
            lines.append(f"# build args in scope: {' '.join(_escape(a) for a in item.build_args)}")
        if item.keyword in ("ADD", "COPY") and item.layer_index is not None:
            lines.append(_layer_comment(item))
        if not item.keyword:
            where = _layer_comment(item) if item.layer_index is not None else "# (no layer)"
            comment = f" comment: {item.comment}" if item.comment else ""
            lines.append(f"{where}: no command recorded;{comment}" if item.layer_index is not None
                         else f"# history entry {item.history_index}: no command recorded;{comment}")  # fmt: skip
            if item.text:
                lines.append(item.text)
            continue
        lines.append(item.text)
    return "\n".join(lines) + "\n"


# --- the host's images, as candidate bases -------------------------------------------------


HistoryReader = Callable[[LocalImage], tuple[str, ...] | None]


def disk_images(disk: Any, inventory: Any) -> tuple[list[LocalImage], HistoryReader]:
    """The images of a :class:`~forensics.host.disk.DiskInventory`, and a reader of one's history."""
    paths = {image.id: image.config_path for image in inventory.images}
    images = [LocalImage(i.id, tuple(i.repo_tags), tuple(i.diff_ids)) for i in inventory.images]

    def from_disk(candidate: LocalImage) -> tuple[str, ...] | None:
        config = disk.read_json(paths[candidate.image_id], [])
        if config is None:
            return None
        return tuple(str(e.get("created_by", ""))[:MAX_ENTRY] for e in _history_texts(config))

    return images, from_disk


def local_images(ctx: Any, problems: list[str]) -> tuple[list[LocalImage], HistoryReader]:
    """The host's images (disk first, else the engine) and a reader of one's history."""
    disk = ctx.disk()
    if disk.exists():
        return disk_images(disk, disk.inventory())
    engine = ctx.engine()
    if isinstance(engine, NotAvailable):
        problems.append(f"no local images to infer FROM: no docker data and {engine.reason}")
        return [], lambda c: None
    images = []
    try:
        for summary in engine.api.images(all=True):
            inspected = engine.api.inspect_image(summary["Id"])
            layers = tuple((inspected.get("RootFS") or {}).get("Layers") or ())
            images.append(LocalImage(inspected["Id"], tuple(inspected.get("RepoTags") or ()), layers))
    except Exception as exc:  # the engine is a convenience here; FROM just stays unknown
        problems.append(f"engine image list failed: {exc}")

    def from_engine(candidate: LocalImage) -> tuple[str, ...] | None:
        try:
            rows = engine.api.history(candidate.image_id)
        except Exception:
            return None
        return tuple(str(r.get("CreatedBy", ""))[:MAX_ENTRY] for r in reversed(rows))

    return images, from_engine
