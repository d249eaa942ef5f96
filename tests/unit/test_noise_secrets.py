"""The image secret search on stock distribution content: no findings for programs that
ask for a password, for code that passes one around, or for the distribution's own
example files; the image author's secrets still found."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.findings import Severity
from forensics.images import analysis
from forensics.images.source import open_path
from forensics.rules import secrets
from tests.unit.test_image_source import layer_tar, save_tar

AWS = b"AKIAIOSFODNN7EXAMPLE"
PEM = b"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"


def _rules(data: bytes) -> list[str]:
    return [h.rule for h in secrets.find_secrets(data)]


# Lines the old rule fired on in debian:bookworm with python3 and perl-base
# (gpasswd, libpam, Config_heavy.pl, Cwd.pm, getpass.py, urllib3 ...).
NOT_SECRETS = [
    b"pwd = Win32::GetCwd();",
    b"pwd=Cwd::getcwd();",
    b"passwd = getpwnam($name)",
    b"password = lexer.get_token()",
    b"password = credentials",
    b"password = password",
    b"token = nextchar",
    b"Token = Ignore",
    b"secret = bytes(password, self.encoding)",
    b"password: Optional[HiddenText] = None,",
    b"def load_cert_chain(self, certfile, keyfile=None, password=None):",
    b"pwd:\n        update_keys(p)",
    b"Password:\n\t[success=end default=ignore]\tpam_unix.so",
    b"# input_password = secret",
    b'password = "%s"',
    b"password='%(password)s'",
    b'DB_PASSWORD="${DB_PASSWORD}"',
    b"password: <your password here>",
    b'api_key = "{api_key}"',
    b"password=********",
    b"password = None",
    b"token := <any CHAR except CTLs or separators>",
    b"PATH=/usr/bin\nHOME=/root\npassword=\n",
]
SECRETS = [
    b"DB_PASSWORD=hunter22",
    b"export API_KEY=0123456789abcdef",
    b'password = "correct horse"',
    b"password: 'letmein'",
    b'{"client_secret": "s3cr3t-value"}',
    b"token: ghx9f0a7b3c1d2",
    b"passwd='geheim'",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_code_formats_and_placeholders_are_not_password_assignments(text: bytes) -> None:
    assert "password-assignment" not in _rules(text)


@pytest.mark.parametrize("text", SECRETS)
def test_values_are_password_assignments(text: bytes) -> None:
    assert "password-assignment" in _rules(text)


def test_binary_content_only_gets_the_exact_rules() -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + b"Password=hunter22\x00New password: \x00"
    assert _rules(elf) == []
    assert _rules(elf + AWS + b"\x00" + PEM) == ["aws-access-key-id", "private-key"]
    pyc = b"\xa7\r\r\n\x00\x00\x00\x00" + b"token = 'abcdef0123'"
    assert _rules(pyc) == []


def test_dpkg_and_apk_manifests_name_their_files() -> None:
    listed = analysis._parse_manifest(b"/var/lib/dpkg/info/passwd.list", b"/.\n/usr\n/usr/bin/gpasswd\n")
    assert listed == frozenset({b"/", b"/usr", b"/usr/bin/gpasswd"})
    apk = b"P:busybox\nF:bin\nR:busybox\nF:etc/udhcpd\nR:udhcpd.conf\n\nP:x\nF:usr/lib\nR:libx.so\n"
    assert analysis._parse_manifest(analysis.APK_INSTALLED, apk) == frozenset(
        {b"/bin/busybox", b"/etc/udhcpd/udhcpd.conf", b"/usr/lib/libx.so"}
    )
    assert analysis._wants_manifest(b"/var/lib/dpkg/info/libpam0g:amd64.list") > 0
    assert analysis._wants_manifest(b"/var/lib/dpkg/info/x.md5sums") == 0
    assert analysis._wants_manifest(b"/app/var/lib/dpkg/info/x.list") == 0


def test_distribution_files_are_info_the_image_authors_changes_are_not(tmp_path: Path) -> None:
    example = b"# an example\npassword = 'example1'\n"
    base = layer_tar([
        ("etc", None), ("usr", None), ("usr/share", None), ("usr/share/doc", None),
        ("usr/share/doc/app-example.conf", example), ("etc/app.conf", b"# password = 'changeme1'\n"),
        ("usr/share/test.pem", PEM),
        ("var", None), ("var/lib", None), ("var/lib/dpkg", None), ("var/lib/dpkg/info", None),
        ("var/lib/dpkg/info/app.list",
         b"/.\n/etc/app.conf\n/usr/share/doc/app-example.conf\n/usr/share/test.pem\n"),
    ])  # fmt: skip
    app = layer_tar([
        ("etc", None), ("etc/app.conf", b"password = 'hunter22x'\n"),
        ("srv", None), ("srv/.env", b"DB_PASSWORD=hunter22\n"), ("srv/config.py", b"KEY = '" + AWS + b"'\n"),
    ])  # fmt: skip
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "i.tar", [base, app])))
    hits = analysis.search(scan)
    content = {(h.path, h.layer, h.severity) for h in hits if h.kind == "content"}
    assert ("/usr/share/doc/app-example.conf", 0, Severity.INFO) in content
    assert ("/usr/share/test.pem", 0, Severity.INFO) in content
    assert ("/etc/app.conf", 0, Severity.INFO) in content  # the package's version, hidden by layer 1
    assert ("/etc/app.conf", 1, Severity.MEDIUM) in content  # the image author's change
    assert ("/srv/.env", 1, Severity.MEDIUM) in content
    assert ("/srv/config.py", 1, Severity.HIGH) in content
    findings = analysis.search_findings(scan, hits, "test", ())
    by_rule: dict[str, list[str]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f.title)
    assert (
        len(by_rule["image.secret-packaged"]) == 1
        and "3 secret-like strings" in by_rule["image.secret-packaged"][0]
    )
    assert not any("app-example" in t or "test.pem" in t for titles in by_rule.values() for t in titles)
    assert any("/etc/app.conf" in t for t in by_rule["image.secret-content"])
    assert any("/srv/.env" in t for t in by_rule["image.secret-name"])
    # the package's old /etc/app.conf is not "hidden in history": a package file, not a leak
    assert not any("hidden in history" in t for t in by_rule["image.secret-content"])
    name = analysis.image_name(scan)
    assert name and all(f"of image {name}: /" in t for t in by_rule["image.secret-content"])
