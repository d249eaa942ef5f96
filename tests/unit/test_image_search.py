"""Secret rules and the image search (names, contents, ENV, history, hidden in history)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.findings import Severity
from forensics.images import analysis
from forensics.images.source import open_path
from forensics.rules import secrets
from tests.unit.test_image_source import layer_tar, save_tar, sha


@pytest.mark.parametrize("rule", secrets.SECRET_RULES, ids=lambda r: r.id)
def test_every_secret_rule_matches_its_sample(rule: secrets.SecretRule) -> None:
    assert rule.pattern.search(rule.sample)
    assert rule.id in {h.rule for h in secrets.find_secrets(rule.sample)}


def test_ordinary_text_has_no_secret() -> None:
    assert secrets.find_secrets(b"PATH=/usr/bin\nHOME=/root\npassword=\n") == []
    assert secrets.mask(b"AKIAIOSFODNN7EXAMPLE") == "AKIA************MPLE"


def test_search_finds_hidden_secrets_names_env_and_history(tmp_path: Path) -> None:
    base = layer_tar([("root", None), ("root/.ssh", None),
                      ("root/.ssh/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"),
                      ("app", None), ("app/junk", b"junk"), ("app/settings", b"DB_PASSWORD=hunter22x")])  # fmt: skip
    top = layer_tar([("root/.ssh/.wh.id_rsa", b""), ("app/.wh.junk", b"")])
    layers = [base, top]
    config = json.dumps({"config": {"Env": ["API_TOKEN=abcdef123", "GPG_KEY=ABCDEF", "PATH=/bin"]},
                         "rootfs": {"diff_ids": [sha(x) for x in layers]},
                         "history": [{"created_by": "COPY . /"},
                                     {"created_by": "/bin/sh -c export K=AKIAIOSFODNN7EXAMPLE; rm x"}]}).encode()  # fmt: skip
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "s.tar", layers, config=config)))
    hits = analysis.search(scan)
    kinds = {(h.kind, h.path, h.severity) for h in hits}
    assert ("hidden", "/root/.ssh/id_rsa", Severity.HIGH) in kinds
    assert ("hidden", "/app/junk", Severity.INFO) in kinds
    assert ("content", "/app/settings", Severity.MEDIUM) in kinds
    assert ("env", "ENV API_TOKEN", Severity.MEDIUM) in kinds
    assert not any(h.path == "ENV GPG_KEY" for h in hits)
    assert ("history", "history 1", Severity.HIGH) in kinds
    findings = analysis.search_findings(scan, hits, "test", ())
    titles = [f.title for f in findings if f.severity is Severity.HIGH]
    assert any("id_rsa" in t and "hidden in history" in t for t in titles)
    assert [f.rule for f in findings if f.rule == "image.hidden-in-history"] == ["image.hidden-in-history"]
