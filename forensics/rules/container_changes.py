"""Suspicious changes in a container's writable layer: the rule table, as data.

Each rule says which changes it wants (kinds, path globs, file types) and what must hold
of them (content patterns over the file's first bytes, a magic prefix, or a named check
from :data:`forensics.containers.checks.CHECKS`). One pass over the diff offers every
change to every rule that wants it; a file's content is read once, only when some rule
wants it. To add a rule, add a row here; a test runs every row against a fixture.

Path globs are ``fnmatch`` patterns over the absolute path inside the container, where
``*`` also matches ``/`` (so ``*/.bashrc`` is any user's).
"""

from __future__ import annotations

import dataclasses
import re

from forensics.findings import Severity

TMP_DIRS = ("/tmp/*", "/var/tmp/*", "/dev/shm/*", "/run/shm/*")
WEB_ROOTS = ("/var/www/*", "/usr/share/nginx/*", "/srv/*", "*/htdocs/*", "*/public_html/*",
             "/usr/local/apache2/*", "/usr/local/tomcat/webapps/*", "/opt/*/webapps/*")  # fmt: skip
WEB_SCRIPTS = ("*.php", "*.php[0-9]", "*.phtml", "*.phar", "*.pht", "*.inc", "*.jsp", "*.jspx", "*.asp",
               "*.aspx", "*.ashx", "*.cgi", "*.pl", "*.py", "*.sh", "*.cfm")  # fmt: skip
SHELL_HISTORIES = ("*/.bash_history", "*/.ash_history", "*/.sh_history", "*/.zsh_history", "*/.history",
                   "*/.mysql_history", "*/.psql_history", "*/.python_history", "*/.node_repl_history",
                   "*/.lesshst", "*/.viminfo", "*/.local/share/fish/fish_history")  # fmt: skip

WEB_SHELL_PATTERN = (
    rb"(?i)(?:\b(?:eval|assert|system|passthru|shell_exec|popen|proc_open|pcntl_exec|create_function"
    rb"|base64_decode|gzinflate|gzuncompress|str_rot13)\s*\("
    rb"|`\s*\$_(?:GET|POST|REQUEST|COOKIE)"
    rb"|\$_(?:GET|POST|REQUEST|COOKIE)\s*\[[^\]]*\]\s*\("
    rb"|Runtime\.getRuntime\(\)\.exec|new\s+ProcessBuilder"
    rb"|WScript\.Shell|eval\s*\(\s*Request)"
)
"""Calls a web shell makes: code evaluation, command execution, decoding of payloads."""


@dataclasses.dataclass(frozen=True)
class ChangeRule:
    """One row of the table."""

    id: str
    """Finding rule id (``container.`` is prepended), e.g. ``persistence.cron``."""
    severity: Severity
    title: str
    """What the finding says, before the paths."""
    paths: tuple[str, ...] = ("*",)
    """Globs a path must match (any)."""
    exclude: tuple[str, ...] = ()
    """Globs that take a path out again."""
    kinds: str = "AC"
    """Change kinds wanted: any of ``A``, ``C``, ``D``."""
    file_types: tuple[str, ...] = ()
    """``file``, ``directory``, ``symlink``, ... (empty: any). For ``D`` the original's type."""
    magic: tuple[bytes, ...] = ()
    """The file must start with one of these."""
    content: str | bytes = b""
    """A regular expression (bytes) that must match in the file's first ``window`` bytes."""
    window: int = 256 * 1024
    """How much of the file ``content`` and ``magic`` look at."""
    check: str = ""
    """A named check from forensics.containers.checks.CHECKS that must also hold."""
    details: str = ""
    """Why it matters, for the finding."""
    supersedes: tuple[str, ...] = ()
    """Rules this one makes redundant on the same file (the more specific one wins)."""

    @property
    def wants_content(self) -> bool:
        return bool(self.magic or self.content)

    def pattern(self) -> re.Pattern[bytes] | None:
        if not self.content:
            return None
        raw = self.content.encode() if isinstance(self.content, str) else self.content
        return re.compile(raw)


CRITICAL, HIGH, MEDIUM, LOW, INFO = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW,
                                     Severity.INFO)  # fmt: skip

# fmt: off
RULES: tuple[ChangeRule, ...] = (
    # -- persistence ------------------------------------------------------------------
    ChangeRule("persistence.ld-preload", CRITICAL, "ld.so.preload written (every program loads it)",
               paths=("/etc/ld.so.preload",), kinds="AC",
               details="A library listed in /etc/ld.so.preload is loaded into every dynamically linked "
               "program: the classic userland rootkit."),
    ChangeRule("persistence.ld-config", HIGH, "dynamic linker configuration changed",
               paths=("/etc/ld.so.conf", "/etc/ld.so.conf.d/*")),
    ChangeRule("persistence.cron", HIGH, "cron or at job added or changed",
               paths=("/etc/crontab", "/etc/cron.*", "/etc/crontabs/*", "/etc/anacrontab", "/var/spool/cron/*",
                      "/var/spool/at/*", "/etc/periodic/*"),
               file_types=("file", "symlink")),
    ChangeRule("persistence.service", HIGH, "service or init script added or changed",
               paths=("/etc/systemd/*", "/lib/systemd/system/*", "/usr/lib/systemd/system/*",
                      "*/.config/systemd/*", "/etc/init.d/*", "/etc/rc.local", "/etc/rc.d/*", "/etc/rc[0-6S].d/*",
                      "/etc/init/*", "/etc/inittab", "/etc/supervisor/*", "/etc/s6*", "/etc/runit/*",
                      "/etc/service/*", "/etc/xdg/autostart/*"),
               file_types=("file", "symlink")),
    ChangeRule("persistence.shell-profile", HIGH, "login shell start-up file added or changed",
               paths=("/etc/profile", "/etc/profile.d/*", "/etc/bash.bashrc", "/etc/bashrc", "/etc/environment",
                      "/etc/zsh/*", "/etc/zshrc", "/etc/zprofile", "/etc/update-motd.d/*"),
               file_types=("file", "symlink")),
    ChangeRule("persistence.shell-rc", HIGH, "a user's shell start-up file added or changed",
               paths=("*/.bashrc", "*/.bash_profile", "*/.bash_login", "*/.bash_logout", "*/.profile",
                      "*/.zshrc", "*/.zprofile", "*/.zlogin", "*/.config/fish/config.fish"),
               exclude=("/etc/skel/*",), file_types=("file", "symlink")),
    ChangeRule("persistence.authorized-keys", HIGH, "SSH authorized_keys added or changed",
               paths=("*/.ssh/authorized_keys", "*/.ssh/authorized_keys2", "/etc/ssh/authorized_keys*"),
               file_types=("file", "symlink")),
    ChangeRule("persistence.sshd", MEDIUM, "SSH server configuration or host keys changed",
               paths=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*", "/etc/ssh/ssh_host_*")),
    ChangeRule("persistence.pam", HIGH, "PAM configuration or module changed",
               paths=("/etc/pam.d/*", "/etc/pam.conf", "/lib/security/*", "/lib/*/security/*",
                      "/usr/lib/security/*", "/usr/lib/*/security/*", "/lib64/security/*")),
    # -- accounts ---------------------------------------------------------------------
    ChangeRule("accounts.files", HIGH, "account or sudo files changed",
               paths=("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
                      "/etc/sudoers.d/*", "/etc/doas.conf"), kinds="ACD",
               details="See the comparison with the image for the accounts and rights that changed."),
    # -- web shells -------------------------------------------------------------------
    ChangeRule("webshell.pattern", CRITICAL, "script under a web root calls eval/system/decoders (web shell)",
               paths=WEB_ROOTS, file_types=("file",), content=WEB_SHELL_PATTERN, check="web-script", supersedes=("webshell.script",),
               details="A script added or changed in a web root that evaluates code or runs commands."),
    ChangeRule("webshell.script", MEDIUM, "script added or changed under a web root",
               paths=WEB_ROOTS, file_types=("file",), check="web-script"),
    # -- new executables --------------------------------------------------------------
    ChangeRule("exec.elf-in-tmp", HIGH, "ELF executable written to a temporary directory",
               paths=TMP_DIRS, file_types=("file",), magic=(b"\x7fELF",), window=4),
    ChangeRule("exec.elf", MEDIUM, "ELF file added or changed in the writable layer",
               exclude=TMP_DIRS, file_types=("file",), magic=(b"\x7fELF",), window=4,
               details="Programs or libraries that are not in the image: installed or dropped at run time."),
    ChangeRule("exec.script-in-tmp", HIGH, "script written to a temporary directory",
               paths=TMP_DIRS, file_types=("file",), magic=(b"#!",), window=2),
    ChangeRule("exec.script", LOW, "script added or changed in the writable layer",
               exclude=TMP_DIRS, file_types=("file",), magic=(b"#!",), window=2),
    ChangeRule("exec.setuid", HIGH, "setuid or setgid bit set on a file",
               file_types=("file",), check="new-setuid"),
    # -- names ------------------------------------------------------------------------
    ChangeRule("names.odd", MEDIUM, "oddly named file (control characters, not UTF-8, dots or blanks only)",
               kinds="AC", check="odd-name"),
    ChangeRule("names.hidden", MEDIUM, "hidden file in a system or temporary directory",
               kinds="A", check="hidden-name"),
    # -- packages ---------------------------------------------------------------------
    ChangeRule("packages.database", MEDIUM, "package database changed (packages installed or removed at run time)",
               paths=("/var/lib/dpkg/status", "/lib/apk/db/installed", "/var/lib/rpm/*",
                      "/usr/lib/sysimage/rpm/*", "/var/lib/pacman/local/*"), kinds="ACD"),
    # -- anti-forensics ---------------------------------------------------------------
    ChangeRule("logs.cleared", MEDIUM, "log or shell history deleted, emptied or truncated",
               paths=("/var/log/*", *SHELL_HISTORIES), kinds="ACD", file_types=("file",), check="emptied"),
)
# fmt: on
"""Every suspicious-change rule."""
