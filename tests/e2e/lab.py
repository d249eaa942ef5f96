"""The lab (compose/, scripts/lab) and the appliance as the e2e tests drive them.

Everything here looks at the host from outside the appliance: `docker inspect` for the
daemon's view, and the overlay2 directories under the docker data root for what a
container's writable layer holds, read directly from disk.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAB_SCRIPT = REPO / "scripts" / "lab"
TRIAGE_SCRIPT = REPO / "scripts" / "triage"
BUILD_IMAGE = REPO / "scripts" / "build-image"
APPLIANCE_IMAGE = os.environ.get("FORENSICS_IMAGE", "forensic-container")
LAB_PROJECT = "forensics-lab"

EXAMINER = "pytest-e2e"
CONTROL = "lab-control"
"""The untouched victim: a finding about it is a false positive."""

# What the README's main command adds where --privileged is refused (as on this
# project's machines): the capabilities the triage needs, named one by one.
CAPABILITY_FALLBACK = (
    "--cap-add", "SYS_PTRACE",
    "--cap-add", "DAC_READ_SEARCH",
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
)  # fmt: skip


def docker_json(*args: str) -> Any:
    return json.loads(subprocess.check_output(["docker", *args], text=True))


def inspect(name_or_id: str) -> dict[str, Any]:
    return docker_json("inspect", name_or_id)[0]


def data_root() -> Path:
    out = subprocess.check_output(["docker", "info", "-f", "{{.DockerRootDir}}"], text=True)
    return Path(out.strip())


def docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def lab_victims() -> dict[str, str]:
    """Name -> id of the lab's victim containers (compose project, victim label)."""
    out = subprocess.check_output(
        ["docker", "ps", "-a", "--format", "{{.Names}} {{.ID}}",
         "--filter", f"label=com.docker.compose.project={LAB_PROJECT}",
         "--filter", "label=io.forensic-container.lab=victim"],
        text=True,
    )  # fmt: skip
    short = dict(line.split() for line in out.splitlines() if line.strip())
    return {name: inspect(cid)["Id"] for name, cid in short.items()}


def run_script(args: list[str], timeout: float) -> float:
    """Run one of the project's scripts; its output goes to pytest's capture. Seconds taken."""
    began = time.monotonic()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{_tails(done)}")
    return time.monotonic() - began


def _tails(done: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    """The ends of a command's output, for an assertion message."""
    return "".join(
        f"--- {name} (last {lines} lines)\n" + "\n".join(text.splitlines()[-lines:]) + "\n"
        for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
    )


# --- a victim's state and writable layer, from outside ---------------------------------

STATE_KEYS = ("Status", "Running", "Paused", "Restarting", "Pid", "StartedAt", "FinishedAt", "ExitCode")


def writable_layer(container_id: str) -> Path:
    """``overlay2/<mount-id>/diff``: the container's writable layer as the disk holds it."""
    root = data_root()
    mount_id = (root / "image/overlay2/layerdb/mounts" / container_id / "mount-id").read_text().strip()
    return root / "overlay2" / mount_id / "diff"


def _entry(path: Path) -> dict[str, Any]:
    st = path.lstat()
    entry: dict[str, Any] = {
        "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size,
        "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "nlink": st.st_nlink,
    }  # fmt: skip
    if stat.S_ISREG(st.st_mode):
        # Opened without following links and never read past its size: the victims are
        # ours, but this is the habit.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as src:
            entry["sha256"] = hashlib.file_digest(src, "sha256").hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        entry["target"] = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        entry["rdev"] = st.st_rdev  # 0:0 is an overlay whiteout
    try:
        entry["xattrs"] = {
            name: os.getxattr(path, name, follow_symlinks=False).hex()
            for name in sorted(os.listxattr(path, follow_symlinks=False))
        }
    except OSError:
        entry["xattrs"] = "unreadable"
    return entry


def layer_listing(top: Path) -> dict[str, dict[str, Any]]:
    """Every entry under ``top`` (the top itself as ``.``) with its metadata and hash."""
    listing = {".": _entry(top)}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            listing[str(path.relative_to(top))] = _entry(path)
    return listing


@dataclasses.dataclass(frozen=True)
class VictimSnapshot:
    """One victim as seen from outside at one moment."""

    name: str
    id: str
    state: dict[str, Any]
    """``docker inspect`` State, the keys in STATE_KEYS, plus RestartCount."""
    layer: dict[str, dict[str, Any]]
    """The writable layer's listing (see :func:`layer_listing`)."""


def snapshot(victims: dict[str, str]) -> dict[str, VictimSnapshot]:
    out = {}
    for name, cid in sorted(victims.items()):
        info = inspect(cid)
        state = {key: info["State"][key] for key in STATE_KEYS}
        state["RestartCount"] = info["RestartCount"]
        out[name] = VictimSnapshot(name, cid, state, layer_listing(writable_layer(cid)))
    return out


def layer_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """What differs, one line per path, for an assertion message."""
    lines = [f"gone: {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"new: {p}" for p in sorted(after.keys() - before.keys())]
    for path in sorted(before.keys() & after.keys()):
        if before[path] != after[path]:
            keys = sorted(
                k
                for k in before[path].keys() | after[path].keys()
                if before[path].get(k) != after[path].get(k)
            )
            lines.append(f"changed: {path} ({', '.join(keys)})")
    return lines


# --- image layers, read from disk ----------------------------------------------------------


def image_layer_dirs(image: str) -> list[Path]:
    """The image's layers, lowest first, as ``overlay2/<cache-id>/diff`` directories."""
    root = data_root()
    diff_ids = inspect(image)["RootFS"]["Layers"]
    dirs, chain = [], ""
    for diff_id in diff_ids:
        chain = (
            diff_id if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        )
        layer = root / "image/overlay2/layerdb/sha256" / chain.removeprefix("sha256:")
        dirs.append(root / "overlay2" / (layer / "cache-id").read_text().strip() / "diff")
    return dirs


# --- the appliance's run ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ApplianceRun:
    """How the appliance was run, and what it left."""

    command: list[str]
    """The command that ran the triage (the last one tried)."""
    how: str
    """``scripts/triage`` or ``docker run``, and with ``--privileged`` or ``capabilities``."""
    case_id: str | None
    """The case id it was given; None when the runner takes no triage options."""
    output: Path
    """Its evidence directory on the host."""
    started_containers: dict[str, str]
    """Containers the engine started while it ran: id -> image, from ``docker events``."""
    seconds: float
    stdout: str
    stderr: str


def triage_script_help() -> str | None:
    """scripts/triage's --help, once it exists and takes ``--output``: it is then the
    README's main job, set-up included."""
    if not os.access(TRIAGE_SCRIPT, os.X_OK):
        return None
    helped = subprocess.run([str(TRIAGE_SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    text = helped.stdout + helped.stderr
    return text if helped.returncode == 0 and "--output" in text else None


def docker_run_command(output: Path, privileged: bool, case_id: str) -> list[str]:
    """The README's main command, with capabilities in place of --privileged if asked."""
    return [
        "docker", "run", "--rm", "--pid=host",
        *(["--privileged"] if privileged else CAPABILITY_FALLBACK),
        "-v", "/:/host:ro",
        "-v", f"{docker_socket()}:/var/run/docker.sock:ro",
        "-v", f"{output}:/evidence",
        APPLIANCE_IMAGE, "triage", "--case-id", case_id, "--examiner", EXAMINER,
    ]  # fmt: skip


def _started_between(since: float, until: float) -> dict[str, str]:
    out = subprocess.check_output(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
         "--filter", "type=container", "--filter", "event=start", "--format", "{{.ID}} {{.From}}"],
        text=True, timeout=60,
    )  # fmt: skip
    return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())


def run_appliance(output: Path, case_id: str, timeout: float) -> ApplianceRun:
    """Run the triage the way the README's main job does, into ``output``: scripts/triage
    when it is there, else the main command with its --privileged fallback."""
    since = time.time() - 1
    began = time.monotonic()
    # FORENSICS_E2E_RUNNER=docker: the plain main command even where scripts/triage exists.
    script_help = None if os.environ.get("FORENSICS_E2E_RUNNER") == "docker" else triage_script_help()
    given: str | None = case_id
    if script_help is not None:
        command = [str(TRIAGE_SCRIPT), "--output", str(output)]
        if "TRIAGE-OPTIONS" in script_help:
            command += ["--", "--case-id", case_id, "--examiner", EXAMINER]
        else:
            given = None
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        how = "scripts/triage, " + (
            "capabilities" if "WITHOUT --privileged" in done.stderr else "--privileged"
        )
    else:
        how, command = "docker run, --privileged", docker_run_command(output, True, case_id)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        # The engine refuses --privileged where the kernel withholds a capability
        # ("unable to apply caps"): the main job then names the capabilities instead.
        if done.returncode == 125 and "caps" in done.stderr:
            how, command = "docker run, capabilities", docker_run_command(output, False, case_id)
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise AssertionError(
            f"the appliance ({how}) exited {done.returncode}: {' '.join(command)}\n{_tails(done)}"
        )
    started = _started_between(since, time.time() + 1)
    return ApplianceRun(command, how, given, output, started, seconds, done.stdout, done.stderr)


# --- what is planted, and which issue's analysis will find it -------------------------


class Kind(enum.Enum):
    FILE = "file in the container's writable layer"
    PROCESS = "process command line"
    RUNTIME_CONFIG = "how the container was started"
    IMAGE_HISTORY = "a layer of the container's image"


@dataclasses.dataclass(frozen=True)
class Planted:
    """One compromise staged by compose/docker-compose.yml (see compose/README.md)."""

    what: str
    container: str
    kind: Kind
    where: str
    """A path in the container, or the config key, or the argv."""
    marker: str
    """Text that proves the plant is there: in the file, the argv, the config, the layer."""
    issue: int
    """The issue whose analysis must report it."""
    mention: str
    """What that analysis's finding must mention (title, details or evidence)."""
