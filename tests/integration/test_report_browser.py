"""report.html from a triage of a fake host, opened in headless Chromium (Debian's package):
it renders, shows every finding, and holds no script or fetch (its CSP forbids them)."""

from __future__ import annotations

import re
import shutil
import struct
import tarfile
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.steps import REGISTRY, Phase, Step, StepContext, TriageOptions
from forensics.tools import run
from forensics.triage import load_steps, run_triage
from tests.unit.fakehost import add_container, fake_host, hexid

HOSTILE = '<script>document.title="owned"</script><img src="http://192.0.2.1/x.png">'


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (scripts/test installs Debian's package)")


def _browser(profile: Path, *extra: str) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", *extra]  # fmt: skip


def test_report_html_renders_the_findings(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    cid = add_container(root, "web", "web")
    image = hexid("image")
    titles = ["uid 0 account added to /etc/passwd", "reverse shell in /tmp/.x", f"image finding {HOSTILE}"]

    def planted(ctx: StepContext) -> None:
        ctx.report(Finding("t.passwd", Severity.CRITICAL, titles[0], f"container:{cid}", ctx.step,
                           (f"disk/containers/{cid}/config.v2.json",)))  # fmt: skip
        ctx.report(Finding("t.shell", Severity.HIGH, titles[1], f"container:{cid}", ctx.step))
        ctx.report(Finding("t.image", Severity.MEDIUM, titles[2], f"image:{image}", ctx.step))
        ctx.sink.add_json(f"images/{image}/history.json", [{"created_by": "ADD x /"}])

    load_steps()
    plan = [REGISTRY["disk.inventory"], REGISTRY["containers.list"], Step("t.planted", Phase.IMAGES, planted),
            REGISTRY["timeline.build"]]  # fmt: skip
    host = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
    result = run_triage(host, tmp_path / "out", TriageOptions(case_id="CASE-7"), argv=["x"], steps=plan)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(result.archive.path) as tar:
        tar.extractall(unpacked, filter="data")
    report = next(unpacked.glob("*/report.html"))
    source = report.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in source and "<script" not in source
    assert not re.search(r"(src|href)=\"(https?:)?//", source)
    assert f'id="image-{image}"' in source and f'href="images/{image}/history.json"' in source

    profile = tmp_path / "profile"
    ran = run(_browser(profile, "--dump-dom", report.as_uri()), timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    dom = ran.stdout.decode("utf-8", "replace")
    for title in titles[:2]:
        assert title in dom
    assert "image finding &lt;script&gt;" in dom  # shown as text, not run
    assert "<title>Forensic triage CASE-7</title>" in dom  # the planted script did not retitle the page
    assert dom.count('class="finding"') == 3
    assert 'href="#finding-' in dom and 'id="contents"' in dom

    png = tmp_path / "report.png"
    ran = run(
        _browser(profile, f"--screenshot={png}", "--window-size=1280,2000", report.as_uri()), timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 20_000  # a page of text and coloured cells, not a blank image
