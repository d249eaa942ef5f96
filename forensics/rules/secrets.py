"""Secret patterns and secret-looking file names: one table, shared by every area.

Each :class:`SecretRule` is a bytes regex over content (a file, an ENV value, a history
line, a memory dump). Keep them simple and well known, so a hit means something. To add
one, add a row; ``tests/unit/test_image_search.py`` runs every row against a sample.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Callable, Iterator

from forensics.findings import Severity
from forensics.rules.globs import GlobSet


@dataclasses.dataclass(frozen=True)
class SecretRule:
    id: str
    """Stable name, e.g. ``aws-access-key-id``."""
    title: str
    pattern: re.Pattern[bytes]
    severity: Severity
    sample: bytes
    """A string the pattern must match (checked by a test)."""
    text_only: bool = False
    """Not looked for in binary content (a NUL in the first bytes: ELF, .pyc): the loose
    rules match strings of every program that asks for a password."""
    accepts: Callable[[re.Match[bytes]], bool] | None = None
    """A second look at each match (e.g. is the value a value, not code); None: all count."""
    keywords: tuple[bytes, ...] = ()
    """Every match holds one of these (lower case when ``fold``): content with none of them
    is passed over without running the expression, as trivy's secret rules do (a plain
    substring test is memchr-fast; the expressions cost ~1 ms a MiB each). Empty: always run."""
    fold: bool = False
    """The keywords are looked for in the content lower-cased (a case-blind pattern)."""

    def matches(self, data: bytes, lowered: bytes | None = None) -> Iterator[re.Match[bytes]]:
        """The accepted matches in ``data`` (``lowered``: ``data.lower()``, if already made)."""
        if self.keywords:
            text = data if not self.fold else (lowered if lowered is not None else data.lower())
            if not any(word in text for word in self.keywords):
                return
        for match in self.pattern.finditer(data):
            if self.accepts is None or self.accepts(match):
                yield match


_TEMPLATE = re.compile(rb"%[-#0-9.]*[sdr(]|\$\{?[A-Za-z_]|\{[^}]*\}|<[^>]*>|@[A-Za-z_]+@")
"""printf and Python formats, shell and template variables, ``<your password>``, ``@VAR@``."""
_CODE = re.compile(rb"[()\[\]{},;`<>]")
_NAME = re.compile(rb"[A-Za-z_][A-Za-z_.:-]*")
"""A name without a digit (``credentials``, ``self.password``, ``Cwd::getcwd``): code."""
_NOT_VALUES = frozenset({b"none", b"null", b"true", b"false", b"undefined", b"required", b"optional"})


def plausible_value(match: re.Match[bytes]) -> bool:
    """Whether a password assignment assigns a value, not a variable, a call or a format.

    A quoted value counts unless it is a template (``"%s"``, ``"${PASS}"``, ``"<password>"``);
    an unquoted one must also not look like code (brackets, commas, a bare name without a
    digit: ``password = credentials`` is Python, ``DB_PASSWORD=hunter22`` is a secret).
    """
    quoted = match.group("quoted")
    value = quoted if quoted is not None else match.group("bare")
    if value is None or len(value) < 6 or len(set(value)) == 1 or value.lower() in _NOT_VALUES:
        return False
    if _TEMPLATE.search(value):
        return False
    return quoted is not None or not (_CODE.search(value) or _NAME.fullmatch(value))


def is_binary(data: bytes) -> bool:
    """Binary content, as file(1) and grep decide: a NUL byte in the first 8 KiB."""
    return b"\0" in data[:8192]


SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule("aws-access-key-id", "AWS access key ID", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
               Severity.HIGH, b"key=AKIAIOSFODNN7EXAMPLE", keywords=(b"AKIA", b"ASIA")),
    SecretRule("private-key", "private key (PEM)",
               re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----"),
               Severity.HIGH, b"-----BEGIN OPENSSH PRIVATE KEY-----", keywords=(b"PRIVATE KEY",)),
    SecretRule("github-token", "GitHub token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
               Severity.HIGH, b"ghp_" + b"a" * 36,
               keywords=(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_")),
    SecretRule("slack-token", "Slack token", re.compile(rb"\bxox[baprs]-[0-9A-Za-z-]{10,}\b"),
               Severity.HIGH, b"xoxb-1234567890-abcdef", keywords=(b"xoxb-", b"xoxa-", b"xoxp-", b"xoxr-", b"xoxs-")),
    SecretRule("password-assignment", "password assignment",
               re.compile(rb"(?i)(?<![a-z])(?:password|passwd|pwd|secret|api_?key|token)['\"]?[ \t]*[=:][ \t]*"
                          rb"(?:(?P<q>['\"])(?P<quoted>[^'\"\r\n]{1,200})(?P=q)|(?P<bare>[^\s'\"]{6,}))"),
               Severity.MEDIUM, b"DB_PASSWORD=hunter22", text_only=True, accepts=plausible_value,
               keywords=(b"passw", b"pwd", b"secret", b"api", b"token"), fold=True),
)  # fmt: skip

SECRET_ENV_WORDS = ("PASS", "PASSWD", "PASSWORD", "SECRET", "KEY", "ACCESS", "TOKEN")
"""dockle's CIS-DI-0010: ENV keys containing these hold secrets (GPG_KEY allowed)."""
SECRET_ENV_ALLOWED = ("GPG_KEY", "GPG_KEYS")

SUSPICIOUS_NAMES: tuple[tuple[str, str, Severity], ...] = (
    ("*/id_rsa", "SSH private key", Severity.HIGH),
    ("*/id_dsa", "SSH private key", Severity.HIGH),
    ("*/id_ecdsa", "SSH private key", Severity.HIGH),
    ("*/id_ed25519", "SSH private key", Severity.HIGH),
    ("*.pem", "PEM file (key or certificate)", Severity.LOW),
    ("*.key", "key file", Severity.MEDIUM),
    ("*.p12", "PKCS#12 bundle", Severity.MEDIUM),
    ("*.pfx", "PKCS#12 bundle", Severity.MEDIUM),
    ("*/.env", "dotenv file", Severity.MEDIUM),
    ("*/.env.*", "dotenv file", Severity.MEDIUM),
    ("*/credentials", "credentials file", Severity.MEDIUM),
    ("*/credentials.json", "credentials file", Severity.MEDIUM),
    ("*/.aws/credentials", "AWS credentials", Severity.HIGH),
    ("*/.docker/config.json", "registry credentials", Severity.MEDIUM),
    ("*/.git-credentials", "git credentials", Severity.HIGH),
    ("*/.netrc", "netrc credentials", Severity.MEDIUM),
    ("*/.pgpass", "PostgreSQL passwords", Severity.MEDIUM),
    ("*/database.yml", "database settings", Severity.LOW),
    ("*/settings.py", "application settings", Severity.LOW),
    ("/etc/shadow", "shadow password file", Severity.INFO),
    ("*/.bash_history", "shell history", Severity.MEDIUM),
    ("*/.ash_history", "shell history", Severity.MEDIUM),
    ("*/.zsh_history", "shell history", Severity.MEDIUM),
    ("*/.sh_history", "shell history", Severity.MEDIUM),
    ("*/.mysql_history", "client history", Severity.MEDIUM),
    ("*/.psql_history", "client history", Severity.MEDIUM),
    ("*/.python_history", "client history", Severity.LOW),
)
"""(glob over the absolute path, what it is, severity). ``*`` also matches ``/``."""


@dataclasses.dataclass(frozen=True)
class SecretHit:
    rule: str
    title: str
    severity: Severity
    excerpt: str
    """The match with its middle masked, so the archive does not spread the secret."""


def mask(value: bytes) -> str:
    text = value.decode("utf-8", "backslashreplace")
    if len(text) <= 8:
        return text[:2] + "*" * max(len(text) - 2, 0)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def find_secrets(data: bytes, limit: int = 20) -> list[SecretHit]:
    """Every rule's matches in ``data`` (at most ``limit`` in all), masked.

    Text-only rules are left out for binary data."""
    hits: list[SecretHit] = []
    binary = is_binary(data)
    lowered = None
    for rule in SECRET_RULES:
        if binary and rule.text_only:
            continue
        if rule.fold and lowered is None:
            lowered = data.lower()
        for match in rule.matches(data, lowered):
            hits.append(SecretHit(rule.id, rule.title, rule.severity, mask(match.group(0)[:200])))
            if len(hits) >= limit:
                return hits
    return hits


@functools.cache
def _any_suspicious_name() -> GlobSet:
    return GlobSet([pattern for pattern, _, _ in SUSPICIOUS_NAMES])


def suspicious_name(path: bytes) -> tuple[str, Severity] | None:
    """The first row of :data:`SUSPICIOUS_NAMES` whose glob matches ``path``, if any (one
    :class:`GlobSet` test rules out most paths; ~30 fnmatch calls a path cost 30 us)."""
    text = path.decode("utf-8", "surrogateescape")
    if not _any_suspicious_name().match(text):
        return None
    for pattern, what, severity in SUSPICIOUS_NAMES:
        if fnmatch.fnmatchcase(text, pattern):
            return what, severity
    return None


def secret_env_key(key: str) -> bool:
    upper = key.upper()
    return upper not in SECRET_ENV_ALLOWED and any(word in upper for word in SECRET_ENV_WORDS)
