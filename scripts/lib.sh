# shellcheck shell=bash
# Shared helpers for the scripts in this directory. Source it; it defines functions and
# variables only and changes no shell options of the caller.
#
# Environment (all optional):
#   FORENSICS_STATE        state dir for logs, pidfiles, temp trees
#                          (default /var/tmp/forensics-ci)
#   FORENSICS_DOCKER_SOCK  socket of the engine to use or start. Default: whatever
#                          DOCKER_HOST says, else /var/run/docker.sock. A non-default
#                          socket makes a daemon we start private (own data-root,
#                          exec-root, pidfile and bridge, no iptables or sysctl changes),
#                          so it cannot disturb an engine already running on the host.
#   FORENSICS_DOCKER_BRIDGE bridge of such a private daemon (default fxdocker0); created
#                          when missing and then deleted again by the stop function
#   FORENSICS_DOCKERD_ARGS extra arguments for a dockerd we start (word-split)
#   FORENSICS_DOCKER_WAIT  seconds to wait for a started engine (default 60)

FORENSICS_STATE=${FORENSICS_STATE:-/var/tmp/forensics-ci}
# dockerd, debootstrap and friends live in sbin, which a non-login PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH=$PATH:/sbin ;; esac
FORENSICS_DEFAULT_SOCK=/var/run/docker.sock
if [[ -z ${FORENSICS_DOCKER_SOCK:-} ]]; then
    if [[ ${DOCKER_HOST:-} == unix://* ]]; then
        FORENSICS_DOCKER_SOCK=${DOCKER_HOST#unix://}
    else
        FORENSICS_DOCKER_SOCK=$FORENSICS_DEFAULT_SOCK
    fi
fi
# Our own record that *we* started a daemon (dockerd's own --pidfile is separate).
FORENSICS_DOCKERD_PIDFILE=$FORENSICS_STATE/dockerd.started.pid
FORENSICS_DOCKERD_LOG=$FORENSICS_STATE/dockerd.log
# Set to 1 in the shell that started the daemon; forensics_docker_stop_if_started uses it.
FORENSICS_DOCKERD_STARTED_HERE=${FORENSICS_DOCKERD_STARTED_HERE:-0}

forensics_log() { printf '[%s] %s\n' "${FORENSICS_LOG_TAG:-${0##*/}}" "$*" >&2; }
# Logs only: under `set -e` a failing logger would end the script before the caller can
# add detail (a log tail) or clean up. Callers return or exit themselves.
forensics_error() { forensics_log "ERROR: $*"; }
# Log an error and fail: under `set -e` this ends the script.
forensics_die() {
    forensics_error "$@"
    return 1
}

# Seconds since the epoch with fractions, for phase timings.
forensics_now() { date +%s.%N; }
# forensics_elapsed START -> "12.3s"
forensics_elapsed() { awk -v s="$1" -v e="$(forensics_now)" 'BEGIN { printf "%.1fs", e - s }'; }

forensics_is_debian() { [[ -r /etc/debian_version ]] && command -v apt-get >/dev/null; }

# ---------------------------------------------------------------------------------------
# apt: install what is missing, with one `apt-get update` per process.

FORENSICS_APT_UPDATED=${FORENSICS_APT_UPDATED:-0}

# forensics_apt_install PKG... : install packages non-interactively (root, Debian only).
# Services are kept from starting during the install: a daemon started by a package's
# postinst would not be ours, would outlive us and could hold CI's output open.
forensics_apt_install() {
    (($# > 0)) || return 0
    [[ $EUID -eq 0 ]] || { forensics_error "need root to install: $*"; return 1; }
    forensics_is_debian || { forensics_error "not Debian, install by hand: $*"; return 1; }
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    forensics_log "installing with apt: $*"
    if [[ $FORENSICS_APT_UPDATED != 1 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null || rc=$?
        ((rc == 0)) && FORENSICS_APT_UPDATED=1
    fi
    if ((rc == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends install "$@" \
            </dev/null || rc=$?
    fi
    ((made_policy)) && rm -f "$policy"
    ((rc == 0)) || forensics_error "apt-get failed (exit $rc) installing: $*"
    return "$rc"
}

# True when /bin/busybox is a statically linked busybox (it must run in a scratch image).
forensics_have_static_busybox() {
    [[ -x /bin/busybox ]] || return 1
    if command -v dpkg-query >/dev/null; then
        [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == *" installed" ]] &&
            return 0
    fi
    # A dynamic executable names its ELF interpreter; a static one does not.
    ! LC_ALL=C grep -qa -e '/lib64/ld-linux' -e '/lib/ld-linux' -e '/lib/ld-musl' /bin/busybox
}

# forensics_need_tools TOOL... : install what is missing among the tools this project's
# scripts and tests use from Debian (one apt step). TOOL is one of dockerd, debootstrap,
# busybox-static.
forensics_need_tools() {
    local t pkgs=()
    for t in "$@"; do
        case $t in
        dockerd)
            command -v dockerd >/dev/null && command -v docker >/dev/null ||
                pkgs+=(docker.io)
            ;;
        debootstrap) command -v debootstrap >/dev/null || pkgs+=(debootstrap) ;;
        busybox-static) forensics_have_static_busybox || pkgs+=(busybox-static) ;;
        *) forensics_error "unknown tool: $t"; return 1 ;;
        esac
    done
    forensics_apt_install "${pkgs[@]}"
}

# ---------------------------------------------------------------------------------------
# Docker engine: use a running one, or start our own and stop only that.

forensics_docker_sock_is_default() {
    [[ $FORENSICS_DOCKER_SOCK == "$FORENSICS_DEFAULT_SOCK" ||
        $FORENSICS_DOCKER_SOCK == /run/docker.sock ]]
}

# Point the docker client (and docker-py/testcontainers) at our socket when it is not
# the default; leave a non-unix DOCKER_HOST (tcp, ssh) alone.
forensics_docker_export_host() {
    if [[ -n ${DOCKER_HOST:-} && ${DOCKER_HOST} != unix://* ]]; then
        return 0
    fi
    if forensics_docker_sock_is_default; then
        [[ ${DOCKER_HOST:-} == unix://* ]] && export DOCKER_HOST="unix://$FORENSICS_DOCKER_SOCK"
    else
        export DOCKER_HOST="unix://$FORENSICS_DOCKER_SOCK"
    fi
    return 0
}

forensics_docker_answers() {
    timeout 20 docker info >/dev/null 2>&1
}

# forensics_pid_is PID NAME : PID is alive (not a zombie) and its executable is NAME
# (guards against a recycled pid in a stale pidfile).
forensics_pid_is() {
    local pid=$1 name=$2 comm stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# forensics_pid_alive PID : PID exists and is not a zombie (an init that does not reap,
# as in some containers, leaves a killed daemon as a zombie for good).
forensics_pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Pid of the daemon we started, from our pidfile, if it is still that daemon.
forensics_docker_our_pid() {
    local pid
    [[ -r $FORENSICS_DOCKERD_PIDFILE ]] || return 1
    pid=$(head -n1 "$FORENSICS_DOCKERD_PIDFILE")
    forensics_pid_is "$pid" dockerd || return 1
    printf '%s\n' "$pid"
}

# Direct children of PID whose executable is NAME.
forensics_children_named() {
    local pid=$1 name=$2 child
    # shellcheck disable=SC2013 # pids are words
    for child in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do
        forensics_pid_is "$child" "$name" && printf '%s\n' "$child"
    done
    return 0
}

# forensics_wait_gone PID SECONDS : wait for PID to exit; false when it did not.
forensics_wait_gone() {
    local pid=$1 n=$(($2 * 10))
    while ((n-- > 0)); do
        forensics_pid_alive "$pid" || return 0
        sleep 0.1
    done
    ! forensics_pid_alive "$pid"
}

# forensics_ensure_docker : make `docker info` answer. Uses a running engine when there
# is one; otherwise (root on Debian) installs docker.io, debootstrap and busybox-static
# if needed, starts dockerd detached with its output in $FORENSICS_DOCKERD_LOG, records
# its pid in $FORENSICS_DOCKERD_PIDFILE and sets FORENSICS_DOCKERD_STARTED_HERE=1.
forensics_ensure_docker() {
    forensics_docker_export_host
    if forensics_docker_answers; then
        local ours
        if ours=$(forensics_docker_our_pid); then
            forensics_log "using running engine (dockerd $ours, started earlier by" \
                "ensure-docker; stop it with scripts/ensure-docker --stop)"
        else
            forensics_log "using running engine"
        fi
        return 0
    fi
    if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != unix://* ]]; then
        forensics_error "DOCKER_HOST=$DOCKER_HOST does not answer, and only a local engine" \
            "can be started"
        return 1
    fi
    if [[ $EUID -ne 0 ]]; then
        forensics_error "no Docker engine answers at $FORENSICS_DOCKER_SOCK and starting" \
            "one needs root; start Docker, or run as root"
        return 1
    fi
    if ! command -v dockerd >/dev/null && ! forensics_is_debian; then
        forensics_error "no Docker engine answers and dockerd is not installed; this" \
            "script can install it only on Debian: install Docker and start it"
        return 1
    fi
    if forensics_is_debian; then
        # One apt step for everything the scripts and tests need from Debian.
        forensics_need_tools dockerd debootstrap busybox-static || return 1
    fi
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        forensics_error "dockerd or the docker client is missing"
        return 1
    fi
    forensics_docker_start
}

# Start dockerd (see forensics_ensure_docker). Internal; callers use ensure.
forensics_docker_start() {
    mkdir -p "$FORENSICS_STATE"
    if [[ -e $FORENSICS_DOCKERD_PIDFILE ]]; then
        # Left by a daemon we started earlier which no longer answers (or died): stop what
        # is left of it (containerd, bridge) before starting anew.
        forensics_log "engine started earlier does not answer; cleaning it up"
        forensics_docker_stop || return 1
    fi

    local args=(-H "unix://$FORENSICS_DOCKER_SOCK") dpidfile=/var/run/docker.pid made_bridge=
    local data_root=/var/lib/docker exec_root=/var/run/docker
    if forensics_docker_sock_is_default; then
        args+=(--pidfile "$dpidfile")
    else
        # Private engine: nothing shared with a host engine (state, pidfile, docker0,
        # iptables rules, ip_forward). Not --bridge=none: that makes dockerd *delete* an
        # existing docker0, cutting the host engine's containers off the network.
        local base=$FORENSICS_STATE/dockerd br=${FORENSICS_DOCKER_BRIDGE:-fxdocker0}
        dpidfile=$base/dockerd.pid data_root=$base/data exec_root=$base/exec
        mkdir -p "$base/data" "$base/exec" "$(dirname "$FORENSICS_DOCKER_SOCK")"
        if [[ ! -e /sys/class/net/$br ]]; then
            ip link add name "$br" type bridge || {
                forensics_error "cannot create bridge $br"
                return 1
            }
            made_bridge=$br
        fi
        args+=(--data-root "$data_root" --exec-root "$exec_root" --pidfile "$dpidfile"
            --bridge "$br" --iptables=false --ip-masq=false --ip-forward=false)
    fi
    # shellcheck disable=SC2206 # word splitting of extra args is the point
    args+=(${FORENSICS_DOCKERD_ARGS:-})

    forensics_log "starting dockerd ${args[*]} (log: $FORENSICS_DOCKERD_LOG)"
    {
        printf '\n==== %s: dockerd %s\n' "$(date -u +%FT%TZ)" "${args[*]}"
    } >>"$FORENSICS_DOCKERD_LOG"
    # setsid: own session, so the caller's terminal signals do not reach it; all three
    # standard streams redirected, so it never holds the caller's (CI's) output open.
    local before
    before=$(cat "$dpidfile" 2>/dev/null) || true
    setsid dockerd "${args[@]}" </dev/null >>"$FORENSICS_DOCKERD_LOG" 2>&1 &
    local pid=$! n found=
    # Without job control (any script) setsid execs dockerd in place, so $! is dockerd.
    # With job control it forks first; then dockerd's own pidfile names it.
    for ((n = 0; n < 50; n++)); do
        if forensics_pid_is "$pid" dockerd; then
            found=$pid
            break
        fi
        local p
        p=$(cat "$dpidfile" 2>/dev/null) || true
        if [[ -n $p && $p != "$before" ]] && forensics_pid_is "$p" dockerd; then
            found=$p
            break
        fi
        sleep 0.1
    done
    if [[ -z $found ]]; then
        [[ -n $made_bridge ]] && ip link delete "$made_bridge" type bridge 2>/dev/null
        forensics_error "dockerd did not start; last log lines ($FORENSICS_DOCKERD_LOG):"
        tail -n 20 "$FORENSICS_DOCKERD_LOG" >&2
        return 1
    fi
    pid=$found
    printf '%s\n' "$pid" >"$FORENSICS_DOCKERD_PIDFILE"
    printf 'data-root %s\nexec-root %s\npidfile %s\n' "$data_root" "$exec_root" "$dpidfile" \
        >>"$FORENSICS_DOCKERD_PIDFILE"
    [[ -n $made_bridge ]] && printf 'bridge %s\n' "$made_bridge" >>"$FORENSICS_DOCKERD_PIDFILE"
    FORENSICS_DOCKERD_STARTED_HERE=1

    local wait=${FORENSICS_DOCKER_WAIT:-60} start=$SECONDS
    while ((SECONDS - start < wait)); do
        if forensics_docker_answers; then
            # Record its managed containerd too: should dockerd die first, stop can still
            # find the orphan.
            local c
            for c in $(forensics_children_named "$pid" containerd); do
                printf 'containerd %s\n' "$c" >>"$FORENSICS_DOCKERD_PIDFILE"
            done
            forensics_log "engine ready after $((SECONDS - start))s (dockerd pid $pid)"
            return 0
        fi
        if ! forensics_pid_is "$pid" dockerd; then
            break
        fi
        sleep 1
    done
    forensics_error "dockerd did not answer within ${wait}s; last log lines" \
        "($FORENSICS_DOCKERD_LOG):"
    tail -n 20 "$FORENSICS_DOCKERD_LOG" >&2
    forensics_docker_stop || true
    return 1
}

# forensics_docker_stop : stop the daemon recorded in our pidfile, and only that one
# (SIGTERM, wait, SIGKILL), plus the containerd it spawned. No pidfile: nothing to do.
# Pidfile: first line dockerd's pid, then "containerd PID" lines.
forensics_docker_stop() {
    [[ -e $FORENSICS_DOCKERD_PIDFILE ]] || return 0
    local pid recorded ctrd c clean=0 data_root exec_root dpidfile
    recorded=$(head -n1 "$FORENSICS_DOCKERD_PIDFILE")
    ctrd=$(awk '$1 == "containerd" { print $2 }' "$FORENSICS_DOCKERD_PIDFILE")
    data_root=$(awk '$1 == "data-root" { print $2 }' "$FORENSICS_DOCKERD_PIDFILE")
    exec_root=$(awk '$1 == "exec-root" { print $2 }' "$FORENSICS_DOCKERD_PIDFILE")
    dpidfile=$(awk '$1 == "pidfile" { print $2 }' "$FORENSICS_DOCKERD_PIDFILE")
    if pid=$(forensics_docker_our_pid); then
        # Children at this moment too: containerd may have been restarted by dockerd.
        ctrd+=" $(forensics_children_named "$pid" containerd)"
        forensics_log "stopping dockerd $pid (we started it)"
        kill -TERM "$pid" 2>/dev/null || true
        if forensics_wait_gone "$pid" 30; then
            clean=1
        else
            forensics_log "dockerd $pid still running after 30s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            forensics_wait_gone "$pid" 5 || true
        fi
    else
        forensics_log "dockerd from $FORENSICS_DOCKERD_PIDFILE is gone; cleaning up"
    fi
    # dockerd stops its containerd on SIGTERM; after a SIGKILL or a crash it is orphaned.
    for c in $ctrd; do
        if forensics_pid_is "$c" containerd; then
            forensics_log "stopping containerd $c (spawned by our dockerd)"
            kill -TERM "$c" 2>/dev/null || true
            forensics_wait_gone "$c" 10 || kill -KILL "$c" 2>/dev/null || true
        fi
    done
    if [[ -n ${pid:-} ]] && forensics_pid_is "$pid" dockerd; then
        forensics_error "dockerd $pid would not stop"
        return 1
    fi
    # dockerd bind-mounts its data-root onto itself when it sits on a shared mount and
    # undoes that on a clean shutdown only.
    if ((!clean)) && [[ -n $data_root && -e $exec_root/unmount-on-shutdown ]] &&
        mountpoint -q "$data_root"; then
        forensics_log "unmounting $data_root left mounted by dockerd $recorded"
        umount "$data_root" || umount -l "$data_root" || true
        rm -f "$exec_root/unmount-on-shutdown"
    fi
    # Likewise the pidfiles of dockerd and of its containerd: where a killed process
    # stays a zombie (an init that does not reap), the next dockerd would take it for
    # running and refuse to start, or wait for a containerd that never answers.
    if ((!clean)) && [[ -n $dpidfile && -n $recorded ]] &&
        [[ $(cat "$dpidfile" 2>/dev/null) == "$recorded" ]] &&
        ! forensics_pid_alive "$recorded"; then
        rm -f "$dpidfile"
    fi
    local cpid
    if ((!clean)) && [[ -n $exec_root ]] &&
        cpid=$(cat "$exec_root/containerd/containerd.pid" 2>/dev/null) &&
        [[ " $ctrd " == *" $cpid "* ]] && ! forensics_pid_alive "$cpid"; then
        rm -f "$exec_root/containerd/containerd.pid"
    fi
    local br
    # shellcheck disable=SC2013 # names are words
    for br in $(awk '$1 == "bridge" { print $2 }' "$FORENSICS_DOCKERD_PIDFILE"); do
        if [[ -e /sys/class/net/$br ]]; then
            forensics_log "deleting bridge $br (we created it)"
            ip link delete "$br" type bridge || true
        fi
    done
    rm -f "$FORENSICS_DOCKERD_PIDFILE"
    FORENSICS_DOCKERD_STARTED_HERE=0
    [[ -n ${pid:-} ]] && forensics_log "dockerd $pid stopped"
    return 0
}

# For EXIT traps: stop the daemon only when this very shell started it.
forensics_docker_stop_if_started() {
    if [[ $FORENSICS_DOCKERD_STARTED_HERE == 1 ]]; then
        forensics_docker_stop
    fi
}

# ---------------------------------------------------------------------------------------
# Debian mirror of this machine, for debootstrap.

# forensics_apt_uri SUITE : print the first http(s)/file URI of an enabled `deb` source
# for SUITE in the machine's apt sources (one-line .list and deb822 .sources). Nothing
# printed when none.
forensics_apt_uri() {
    local suite=$1 f uri
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        uri=$(awk -v s="$suite" '
            $1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s && $i ~ /^(https?|file):/) { print $i; exit }
            }' "$f")
        [[ -n $uri ]] && { printf '%s\n' "${uri%/}"; return 0; }
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        uri=$(awk -v s="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (j = 1; j <= NF; j++) {
                    line = $j
                    if (line ~ /^#/) continue
                    k = tolower(line); sub(/:.*/, "", k)
                    v = line; sub(/^[^:]*:[ \t]*/, "", v)
                    if (k == "types") types = v
                    else if (k == "uris") uris = v
                    else if (k == "suites") suites = v
                    else if (k == "enabled") enabled = tolower(v)
                }
                if (enabled == "no") next
                if ((" " types " ") !~ / deb /) next
                if ((" " suites " ") !~ (" " s " ")) next
                n = split(uris, u, /[ \t]+/)
                for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|file):/) { print u[j]; exit }
            }' "$f")
        [[ -n $uri ]] && { printf '%s\n' "${uri%/}"; return 0; }
    done
    return 0
}

# forensics_debian_mirror [SUITE] : FORENSICS_DEBIAN_MIRROR, else the machine's mirror
# for SUITE (default bookworm), else http://deb.debian.org/debian.
forensics_debian_mirror() {
    local uri=${FORENSICS_DEBIAN_MIRROR:-}
    [[ -n $uri ]] || uri=$(forensics_apt_uri "${1:-bookworm}")
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# forensics_debian_security_mirror [SUITE] : the same for SUITE-security.
forensics_debian_security_mirror() {
    local uri=${FORENSICS_DEBIAN_SECURITY_MIRROR:-}
    [[ -n $uri ]] || uri=$(forensics_apt_uri "${1:-bookworm}-security")
    printf '%s\n' "${uri:-http://deb.debian.org/debian-security}"
}
