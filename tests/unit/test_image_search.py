"""Secret rules and the image search (names, contents, ENV, history, hidden in history)."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import sys
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


MATCHING = {
    "aws-access-key-id": [b"AKIAIOSFODNN7EXAMPLE", b"x ASIAIOSFODNN7EXAMPLE y"],
    "private-key": [b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN RSA PRIVATE KEY-----",
                    b"-----BEGIN PGP PRIVATE KEY BLOCK-----"],
    "github-token": [p + b"_" + b"A1" * 18 for p in (b"ghp", b"gho", b"ghu", b"ghs", b"ghr")]
    + [b"github_pat_" + b"a_" * 41],
    "slack-token": [b"xox" + bytes([k]) + b"-0123456789-abc" for k in b"baprs"],
    "password-assignment": [b'PASSWORD = "s3cr3t-value"', b"Passwd: hunter22", b"db_pwd=hunter22x",
                            b"SECRET='abcdefgh1'", b"API_KEY=abcdef123", b"apikey: 'zyxwvu987'",
                            b"ToKeN=a1b2c3d4e5"],
}  # fmt: skip
"""Strings each rule must find, one per alternative of its expression."""


@pytest.mark.parametrize("rule", secrets.SECRET_RULES, ids=lambda r: r.id)
def test_every_rule_has_keywords_that_every_match_holds(rule: secrets.SecretRule) -> None:
    assert rule.keywords, "a rule without keywords runs its expression over every byte"
    if rule.fold:
        assert all(word == word.lower() for word in rule.keywords)
    for text in [rule.sample, *MATCHING[rule.id]]:
        assert list(rule.matches(text)), text
        assert list(rule.matches(text, text.lower())), text
        for match in rule.pattern.finditer(text):
            found = match.group(0).lower() if rule.fold else match.group(0)
            assert any(word in found for word in rule.keywords), (text, rule.keywords)


def test_keywords_change_no_result_on_real_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prefilter only saves time: over Python's own library (full of password and token
    code), this test's files and a binary, every hit is the same without it."""
    corpus = sorted(Path(json.__file__).parent.parent.glob("*.py"))
    corpus += sorted(Path(__file__).parent.glob("*.py"))
    corpus.append(Path(sys.executable).resolve())
    samples = [path.read_bytes()[: analysis.SEARCH_WINDOW] for path in corpus]
    samples += [b"\n".join(MATCHING[rule.id]) for rule in secrets.SECRET_RULES]
    with_keywords = [secrets.find_secrets(data, limit=1000) for data in samples]
    plain = tuple(dataclasses.replace(rule, keywords=()) for rule in secrets.SECRET_RULES)
    monkeypatch.setattr(secrets, "SECRET_RULES", plain)
    without = [secrets.find_secrets(data, limit=1000) for data in samples]
    assert with_keywords == without
    assert sum(map(len, without)) > 20  # the corpus does hold secret-like strings


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


def test_suspicious_name_is_the_first_glob_that_matches() -> None:
    """The one-GlobSet shortcut gives what a plain fnmatch loop over the table gives."""

    def plain(path: bytes) -> tuple[str, Severity] | None:
        text = path.decode("utf-8", "surrogateescape")
        return next(((w, s) for p, w, s in secrets.SUSPICIOUS_NAMES if fnmatch.fnmatchcase(text, p)), None)

    paths = [b"/", b"/etc/passwd", b"/root/.ssh/id_rsa.pub", b"/home/a/.envrc", b"/srv/x.pyc", b"/x.key.bak"]
    for pattern, _, _ in secrets.SUSPICIOUS_NAMES:
        for fill in ("", "a", "home/u", "\udcff"):
            paths.append(pattern.replace("*", fill).encode("utf-8", "surrogateescape"))
            paths.append(pattern.replace("*", fill).encode("utf-8", "surrogateescape") + b"~")
    named = [secrets.suspicious_name(p) for p in paths]
    assert named == [plain(p) for p in paths]
    assert sum(n is not None for n in named) > len(secrets.SUSPICIOUS_NAMES)
