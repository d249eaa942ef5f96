"""Build a fake Docker host root (var/lib/docker, overlay2 layout) under tmp_path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from forensics.host.disk import chain_ids


def hexid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def add_container(root: Path, seed: str, name: str, running: bool = True, **extra: Any) -> str:
    cid = hexid(seed)
    base = root / "var/lib/docker/containers" / cid
    base.mkdir(parents=True)
    config = {
        "ID": cid,
        "Name": "/" + name,
        "Image": "sha256:" + hexid("image"),
        "Created": "2026-01-01T00:00:00Z",
        "Driver": "overlay2",
        "Config": {"Image": "victim:latest"},
        "State": {"Running": running, "Pid": 1234 if running else 0, "StartedAt": "2026-01-01T00:00:01Z",
                  "FinishedAt": "0001-01-01T00:00:00Z", "ExitCode": 0},
    }  # fmt: skip
    config.update(extra)
    (base / "config.v2.json").write_text(json.dumps(config))
    (base / "hostconfig.json").write_text(json.dumps({"Privileged": False}))
    mount = root / "var/lib/docker/image/overlay2/layerdb/mounts" / cid
    mount.mkdir(parents=True)
    (mount / "mount-id").write_text(hexid("mount" + seed))
    return cid


def add_image(root: Path, seed: str, tag: str) -> str:
    iid = hexid(seed)
    content = root / "var/lib/docker/image/overlay2/imagedb/content/sha256"
    content.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hexid("layer" + seed)]},
    }
    (content / iid).write_text(json.dumps(config))
    repos_path = root / "var/lib/docker/image/overlay2/repositories.json"
    repos = json.loads(repos_path.read_text()) if repos_path.exists() else {"Repositories": {}}
    repos["Repositories"].setdefault(tag.split(":")[0], {})[tag] = "sha256:" + iid
    repos_path.write_text(json.dumps(repos))
    return iid


def fake_host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("victim-host\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/os-release").write_text('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    (root / "var/lib/docker/containers").mkdir(parents=True)
    add_image(root, "image", "victim:latest")
    return root


Layer = dict[str, bytes | None]
"""path -> content (None: a directory)."""


def add_layered_image(root: Path, seed: str, tag: str, layers: list[Layer], history: list[str]) -> str:
    """An image whose layers exist as overlay2 diff dirs, with layerdb and imagedb entries."""
    docker = root / "var/lib/docker"
    # A diff_id names the layer's content, so images sharing a base share its layers.
    diff_ids = ["sha256:" + hexid(repr(sorted(layer.items()))) for layer in layers]
    for index, (layer, chain) in enumerate(zip(layers, chain_ids(diff_ids), strict=True)):
        db = docker / "image/overlay2/layerdb/sha256" / chain[7:]
        if db.exists():
            continue
        cache = hexid(f"{seed}-cache-{index}")
        diff = docker / "overlay2" / cache / "diff"
        diff.mkdir(parents=True)
        for path, content in layer.items():
            target = diff / path
            if content is None:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        db.mkdir(parents=True)
        (db / "diff").write_text(diff_ids[index])
        (db / "cache-id").write_text(cache)
        (db / "size").write_text(str(sum(len(c) for c in layer.values() if c)))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": h} for h in history]}).encode()  # fmt: skip
    image_id = hashlib.sha256(config).hexdigest()
    content = docker / "image/overlay2/imagedb/content/sha256"
    content.mkdir(parents=True, exist_ok=True)
    (content / image_id).write_bytes(config)
    repos_path = docker / "image/overlay2/repositories.json"
    repos = json.loads(repos_path.read_text()) if repos_path.exists() else {"Repositories": {}}
    repos["Repositories"].setdefault(tag.split(":")[0], {})[tag] = "sha256:" + image_id
    repos_path.write_text(json.dumps(repos))
    return "sha256:" + image_id
