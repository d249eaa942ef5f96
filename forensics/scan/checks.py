"""Every check the scans run, as data: id, level, title, remediation, severity.

Docker Bench for Security's checks keep the CIS Docker Benchmark's numbering; dockle's
checkpoints keep dockle's ids and levels. Code in :mod:`forensics.scan.bench` and
:mod:`forensics.scan.lint` decides each one; this module only describes them.
"""

from __future__ import annotations

from forensics.findings import Severity
from forensics.scan.model import CheckDef, Status

H, M, L, I = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO  # noqa: E741
W, N, F, INF = Status.WARN, Status.NOTE, Status.FATAL, Status.INFO


def _c(
    id: str, level: Status, title: str, remediation: str, sev: Severity = M, supported: bool = True
) -> CheckDef:
    return CheckDef(id, level, title, remediation, sev, supported)


_AUDIT = "Add a rule such as `-w {path} -k docker` to /etc/audit/rules.d/docker.rules and restart auditd."

AUDITED_PATHS: dict[str, str] = {
    "1.1.3": "/usr/bin/dockerd",
    "1.1.4": "/run/containerd",
    "1.1.5": "/var/lib/docker",
    "1.1.6": "/etc/docker",
    "1.1.7": "docker.service",
    "1.1.8": "/run/containerd/containerd.sock",
    "1.1.9": "docker.socket",
    "1.1.10": "/etc/default/docker",
    "1.1.11": "/etc/docker/daemon.json",
    "1.1.12": "/etc/containerd/config.toml",
    "1.1.13": "/etc/sysconfig/docker",
    "1.1.14": "/usr/bin/containerd",
    "1.1.15": "/usr/bin/containerd-shim",
    "1.1.16": "/usr/bin/containerd-shim-runc-v1",
    "1.1.17": "/usr/bin/containerd-shim-runc-v2",
    "1.1.18": "/usr/bin/runc",
}
"""Files and directories section 1.1 wants audited (unit names are looked up on disk)."""

_BENCH: list[CheckDef] = [
    # 1 Host configuration
    _c("1.1.1", W, "Ensure a separate partition for containers has been created",
       "Put the docker data root on its own partition (or logical volume).", L),
    _c("1.1.2", INF, "Ensure only trusted users are allowed to control Docker daemon",
       "Remove untrusted users from the docker group: it is root on the host.", M),
    *[_c(i, W, f"Ensure auditing is configured for {p}", _AUDIT.format(path=p), L) for i, p in AUDITED_PATHS.items()],
    _c("1.2.1", N, "Ensure the container host has been Hardened", "Harden the host (CIS benchmark for its OS).", I),
    _c("1.2.2", INF, "Ensure that the version of Docker is up to date", "Keep Docker Engine up to date.", I),
    # 2 Docker daemon configuration
    _c("2.1", INF, "Run the Docker daemon as a non-root user, if possible", "Consider rootless mode.", I),
    _c("2.2", W, "Ensure network traffic is restricted between containers on the default bridge",
       'Set "icc": false in daemon.json (or --icc=false).', M),
    _c("2.3", W, "Ensure the logging level is set to 'info'", 'Set "log-level": "info".', L),
    _c("2.4", W, "Ensure Docker is allowed to make changes to iptables", 'Do not set "iptables": false.', L),
    _c("2.5", W, "Ensure insecure registries are not used", "Remove insecure-registries.", M),
    _c("2.6", W, "Ensure aufs storage driver is not used", "Use overlay2.", L),
    _c("2.7", W, "Ensure TLS authentication for Docker daemon is configured",
       "With a TCP listener set tlsverify, tlscacert, tlscert and tlskey.", H),
    _c("2.8", INF, "Ensure the default ulimit is configured appropriately", 'Set "default-ulimits" if needed.', I),
    _c("2.9", W, "Enable user namespace support", 'Set "userns-remap": "default".', L),
    _c("2.10", W, "Ensure the default cgroup usage has been confirmed", "Leave cgroup-parent at its default.", L),
    _c("2.11", W, "Ensure base device size is not changed until needed", "Remove dm.basesize from storage-opts.", L),
    _c("2.12", W, "Ensure that authorization for Docker client commands is enabled",
       "Configure an authorization plugin (authorization-plugins).", L),
    _c("2.13", W, "Ensure centralized and remote logging is configured",
       "Use a remote log driver (syslog, journald forwarding, fluentd, gelf...).", L),
    _c("2.14", W, "Ensure containers are restricted from acquiring new privileges",
       'Set "no-new-privileges": true.', L),
    _c("2.15", W, "Ensure live restore is enabled", 'Set "live-restore": true.', L),
    _c("2.16", W, "Ensure Userland Proxy is Disabled", 'Set "userland-proxy": false.', L),
    _c("2.17", INF, "Ensure that a daemon-wide custom seccomp profile is applied if appropriate",
       "Set seccomp-profile if the default does not fit.", I),
    _c("2.18", W, "Ensure that experimental features are not implemented in production",
       'Remove "experimental": true.', L),
    # 3 Docker daemon configuration files
    _c("3.1", W, "Ensure that the docker.service file ownership is set to root:root", "chown root:root <unit>", M),
    _c("3.2", W, "Ensure that docker.service file permissions are appropriately set", "chmod 644 <unit>", M),
    _c("3.3", W, "Ensure that docker.socket file ownership is set to root:root", "chown root:root <unit>", M),
    _c("3.4", W, "Ensure that docker.socket file permissions are set to 644 or more restrictive", "chmod 644 <unit>", M),
    _c("3.5", W, "Ensure that the /etc/docker directory ownership is set to root:root", "chown root:root /etc/docker", M),
    _c("3.6", W, "Ensure that /etc/docker directory permissions are set to 755 or more restrictively",
       "chmod 755 /etc/docker", M),
    _c("3.7", W, "Ensure that registry certificate file ownership is set to root:root",
       "chown root:root /etc/docker/certs.d/<registry>/*", L),
    _c("3.8", W, "Ensure that registry certificate file permissions are set to 444 or more restrictively",
       "chmod 444 /etc/docker/certs.d/<registry>/*", L),
    _c("3.9", W, "Ensure that TLS CA certificate file ownership is set to root:root", "chown root:root <tlscacert>", L),
    _c("3.10", W, "Ensure that TLS CA certificate file permissions are set to 444 or more restrictively",
       "chmod 444 <tlscacert>", L),
    _c("3.11", W, "Ensure that Docker server certificate file ownership is set to root:root",
       "chown root:root <tlscert>", L),
    _c("3.12", W, "Ensure that the Docker server certificate file permissions are set to 444 or more restrictively",
       "chmod 444 <tlscert>", L),
    _c("3.13", W, "Ensure that the Docker server certificate key file ownership is set to root:root",
       "chown root:root <tlskey>", M),
    _c("3.14", W, "Ensure that the Docker server certificate key file permissions are set to 400",
       "chmod 400 <tlskey>", M),
    _c("3.15", W, "Ensure that the Docker socket file ownership is set to root:docker",
       "chown root:docker /var/run/docker.sock", H),
    _c("3.16", W, "Ensure that the Docker socket file permissions are set to 660 or more restrictively",
       "chmod 660 /var/run/docker.sock", H),
    _c("3.17", W, "Ensure that the daemon.json file ownership is set to root:root",
       "chown root:root /etc/docker/daemon.json", M),
    _c("3.18", W, "Ensure that daemon.json file permissions are set to 644 or more restrictive",
       "chmod 644 /etc/docker/daemon.json", M),
    _c("3.19", W, "Ensure that the /etc/default/docker file ownership is set to root:root",
       "chown root:root /etc/default/docker", L),
    _c("3.20", W, "Ensure that the /etc/default/docker file permissions are set to 644 or more restrictively",
       "chmod 644 /etc/default/docker", L),
    _c("3.21", W, "Ensure that the /etc/sysconfig/docker file ownership is set to root:root",
       "chown root:root /etc/sysconfig/docker", L),
    _c("3.22", W, "Ensure that /etc/sysconfig/docker file permissions are set to 644 or more restrictively",
       "chmod 644 /etc/sysconfig/docker", L),
    _c("3.23", W, "Ensure that the Containerd socket file ownership is set to root:root",
       "chown root:root /run/containerd/containerd.sock", M),
    _c("3.24", W, "Ensure that the Containerd socket file permissions are set to 660 or more restrictively",
       "chmod 660 /run/containerd/containerd.sock", M),
    # 4 Container images and build files
    _c("4.1", W, "Ensure that a user for the container has been created",
       "Create a user in the Dockerfile (USER) or run with --user.", L),
    _c("4.2", N, "Ensure that containers use only trusted base images", "Use trusted, minimal base images.", I),
    _c("4.3", N, "Ensure that unnecessary packages are not installed in the container",
       "Install only what the container needs.", I),
    _c("4.4", N, "Ensure images are scanned and rebuilt to include security patches",
       "Scan images (forensics scan image) and rebuild them.", I),
    _c("4.5", N, "Ensure Content trust for Docker is Enabled", "export DOCKER_CONTENT_TRUST=1 where images are pulled.", I),
    _c("4.6", W, "Ensure that HEALTHCHECK instructions have been added to container images",
       "Add a HEALTHCHECK instruction.", L),
    _c("4.7", INF, "Ensure update instructions are not used alone in the Dockerfile",
       "Combine `apt-get update` with the install in one RUN.", I),
    _c("4.8", N, "Ensure setuid and setgid permissions are removed",
       "Remove setuid/setgid bits the image does not need (see forensics scan lint).", I),
    _c("4.9", INF, "Ensure that COPY is used instead of ADD in Dockerfiles", "Use COPY instead of ADD.", I),
    _c("4.10", N, "Ensure secrets are not stored in Dockerfiles", "Pass secrets at run time (see forensics scan lint).", I),
    _c("4.11", N, "Ensure only verified packages are installed", "Verify package signatures.", I),
    _c("4.12", N, "Ensure all signed artifacts are validated", "Validate signatures of artifacts.", I),
    # 5 Container runtime
    _c("5.1", W, "Ensure that, if applicable, an AppArmor Profile is enabled",
       "Run with an AppArmor profile (do not use apparmor=unconfined).", M),
    _c("5.2", W, "Ensure that, if applicable, SELinux security options are set",
       "Run with --security-opt label=...", L),
    _c("5.3", W, "Ensure that Linux kernel capabilities are restricted within containers",
       "Drop capabilities not needed; do not --cap-add.", M),
    _c("5.4", W, "Ensure that privileged containers are not used", "Do not run with --privileged.", H),
    _c("5.5", W, "Ensure sensitive host system directories are not mounted on containers",
       "Do not mount /, /boot, /dev, /etc, /lib, /proc, /sys or /usr of the host.", H),
    _c("5.6", W, "Ensure sshd is not run within containers", "Remove sshd; use docker exec for access.", M),
    _c("5.7", W, "Ensure privileged ports are not mapped within containers", "Map container ports to host ports above 1024.", L),
    _c("5.8", N, "Ensure that only needed ports are open on the container", "Publish only the ports needed.", I),
    _c("5.9", W, "Ensure that the host's network namespace is not shared", "Do not run with --network=host.", H),
    _c("5.10", W, "Ensure that the memory usage for containers is limited", "Run with --memory.", L),
    _c("5.11", W, "Ensure that CPU priority is set appropriately on containers", "Run with --cpu-shares.", L),
    _c("5.12", W, "Ensure that the container's root filesystem is mounted as read only", "Run with --read-only.", L),
    _c("5.13", W, "Ensure that incoming container traffic is bound to a specific host interface",
       "Publish as -p <host-ip>:<port>:<port>.", L),
    _c("5.14", W, "Ensure that the 'on-failure' container restart policy is set to '5'",
       "Run with --restart on-failure:5.", L),
    _c("5.15", W, "Ensure that the host's process namespace is not shared", "Do not run with --pid=host.", H),
    _c("5.16", W, "Ensure that the host's IPC namespace is not shared", "Do not run with --ipc=host.", M),
    _c("5.17", W, "Ensure that host devices are not directly exposed to containers", "Do not use --device.", M),
    _c("5.18", INF, "Ensure that the default ulimit is overwritten at runtime if needed",
       "Override ulimits only when needed.", I),
    _c("5.19", W, "Ensure mount propagation mode is not set to shared", "Do not mount with shared propagation.", M),
    _c("5.20", W, "Ensure that the host's UTS namespace is not shared", "Do not run with --uts=host.", M),
    _c("5.21", W, "Ensure the default seccomp profile is not Disabled",
       "Do not run with --security-opt seccomp=unconfined.", M),
    _c("5.22", N, "Ensure that docker exec commands are not used with the privileged option",
       "Do not use docker exec --privileged (check the audit log).", I),
    _c("5.23", N, "Ensure that docker exec commands are not used with the user=root option",
       "Do not use docker exec --user=root (check the audit log).", I),
    _c("5.24", W, "Ensure that cgroup usage is confirmed", "Do not set --cgroup-parent unless needed.", L),
    _c("5.25", W, "Ensure that the container is restricted from acquiring additional privileges",
       "Run with --security-opt no-new-privileges.", L),
    _c("5.26", W, "Ensure that container health is checked at runtime", "Add a HEALTHCHECK or --health-cmd.", L),
    _c("5.27", INF, "Ensure that Docker commands always make use of the latest version of their image",
       "Pull images by digest, and refresh them.", I),
    _c("5.28", W, "Ensure that the PIDs cgroup limit is used", "Run with --pids-limit.", L),
    _c("5.29", W, "Ensure that Docker's default bridge 'docker0' is not used", "Use user-defined networks.", L),
    _c("5.30", W, "Ensure that the host's user namespaces are not shared", "Do not run with --userns=host.", M),
    _c("5.31", W, "Ensure that the Docker socket is not mounted inside any containers",
       "Do not mount /var/run/docker.sock: it is root on the host.", H),
    # 6 Docker security operations
    _c("6.1", INF, "Ensure that image sprawl is avoided", "Remove unused images.", I),
    _c("6.2", INF, "Ensure that container sprawl is avoided", "Remove stopped containers.", I),
    # 7 Docker Swarm configuration
    _c("7.1", W, "Ensure swarm mode is not Enabled, if not needed", "docker swarm leave if swarm is not used.", L),
    _c("7.2", W, "Ensure that the minimum number of manager nodes have been created in a swarm",
       "Keep managers to the needed minimum.", L),
    _c("7.3", W, "Ensure that swarm services are bound to a specific host interface",
       "Bind the swarm listener to one interface.", L),
    _c("7.4", W, "Ensure that all Docker swarm overlay networks are encrypted", "Create overlays with --opt encrypted.", L),
    _c("7.5", N, "Ensure that Docker's secret management commands are used for managing secrets in a swarm cluster",
       "Use docker secret.", I),
    _c("7.6", W, "Ensure that swarm manager is run in auto-lock mode", "docker swarm update --autolock.", L),
    _c("7.7", N, "Ensure that the swarm manager auto-lock key is rotated periodically", "Rotate the unlock key.", I),
    _c("7.8", N, "Ensure that node certificates are rotated as appropriate", "Set --cert-expiry.", I),
    _c("7.9", N, "Ensure that CA certificates are rotated as appropriate", "docker swarm ca --rotate.", I),
]  # fmt: skip

BENCH: dict[str, CheckDef] = {c.id: c for c in _BENCH}

_DOCKLE: list[CheckDef] = [
    _c("CIS-DI-0001", W, "Create a user for the container", "Add USER with a non-root user.", L),
    _c("CIS-DI-0002", F, "Use trusted base images for containers", "Use trusted base images.", I, supported=False),
    _c("CIS-DI-0003", W, "Do not install unnecessary packages in the container", "", I, supported=False),
    _c("CIS-DI-0004", W, "Scan and rebuild the images to include security patches",
       "Use trivy (forensics scan image).", I, supported=False),
    _c("CIS-DI-0005", INF, "Enable Content trust for Docker", "export DOCKER_CONTENT_TRUST=1 before docker pull/build.", I),
    _c("CIS-DI-0006", INF, "Add HEALTHCHECK instruction to the container image", "Add a HEALTHCHECK instruction.", I),
    _c("CIS-DI-0007", F, "Do not use update instructions alone in the Dockerfile",
       "Use 'apt-get update && apt-get install' in one RUN.", L),
    _c("CIS-DI-0008", INF, "Confirm safety of setuid/setgid files", "Remove setuid/setgid bits not needed.", L),
    _c("CIS-DI-0009", F, "Use COPY instead of ADD in Dockerfile", "Use COPY instead of ADD.", L),
    _c("CIS-DI-0010", F, "Do not store credential in environment variables/files",
       "Pass secrets at run time (docker secrets, mounted files), never in the image.", H),
    _c("CIS-DI-0011", W, "Ensure only verified packages are installed", "", I, supported=False),
    _c("DKL-DI-0001", F, "Avoid sudo command", "Remove sudo from the image.", M),
    _c("DKL-DI-0002", F, "Avoid sensitive directory mounting", "Do not declare VOLUME on /sys, /dev or /proc.", M),
    _c("DKL-DI-0003", W, "Avoid apt-get dist-upgrade", "Do not run apt-get dist-upgrade in the image.", L),
    _c("DKL-DI-0004", F, "Use 'apk add' with --no-cache", "Use apk add --no-cache.", L),
    _c("DKL-DI-0005", F, "Clear apt-get caches", "rm -rf /var/lib/apt/lists/* in the same RUN as apt-get install.", L),
    _c("DKL-DI-0006", W, "Avoid latest tag", "Tag images with a version.", L),
    _c("DKL-LI-0001", F, "Avoid empty password", "Lock or set passwords for every account.", H),
    _c("DKL-LI-0002", F, "Be unique UID/GROUPs", "Give every user and group its own id.", M),
    _c("DKL-LI-0003", INF, "Only put necessary files", "Remove unnecessary files (.git, caches...).", I),
]  # fmt: skip

DOCKLE: dict[str, CheckDef] = {c.id: c for c in _DOCKLE}

SECRET_ENV_WORDS = ("PASSWD", "PASSWORD", "PASS", "SECRET", "KEY", "ACCESS", "TOKEN")
"""dockle's credential keywords in ENV names."""
SECRET_ENV_ALLOWED = frozenset({"GPG_KEY"})
SECRET_FILE_NAMES = frozenset(
    {
        b"credentials.json",
        b"id_rsa",
        b"id_dsa",
        b"id_ecdsa",
        b"id_ed25519",
        b".env",
        b"database.yml",
        b"settings.py",
    }
)
"""dockle's suspicious file base names (CIS-DI-0010)."""
SUDO_PATHS = (b"/usr/bin/sudo", b"/bin/sudo", b"/usr/sbin/sudo", b"/sbin/sudo", b"/usr/local/bin/sudo")
SENSITIVE_VOLUMES = ("/sys", "/dev", "/proc")
UNNECESSARY_NAMES = frozenset({b".git", b".DS_Store", b".npm", b".cache", b".vscode", b".idea", b"Dockerfile",
                               b"docker-compose.yml", b".bash_history", b".wget-hsts", b".viminfo"})  # fmt: skip
"""File or directory base names that rarely belong in an image (DKL-LI-0003)."""
