# forensic-container: the forensic appliance image.
#
#   docker run --rm --privileged --pid=host \
#     -v /:/host:ro -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     -v "$PWD/evidence:/evidence" forensic-container triage
#
# Build, two ways; both install exactly the wheels pinned by sha256 in
# requirements-image.txt, and build the forensics package from this tree:
#
#   Without a registry (air-gapped; what scripts/build-image does):
#     scripts/wheelhouse            # on the host: the locked wheels into ./wheelhouse/
#     DOCKER_BUILDKIT=0 docker build -t forensic-container .
#   wheelhouse/ must be prepared first by scripts/wheelhouse: the build then installs from
#   it with --no-index and needs no package index. The base image must already be in the
#   engine: scripts/build-image builds debian:bookworm-slim with debootstrap
#   (scripts/build-base-images) when it is not. Debian's packages come from the base
#   image's apt sources.
#
#   With a registry and a package index reachable from build containers:
#     docker build -t forensic-container .
#   With no wheelhouse/ the same locked wheels come from the index (PyPI, or the mirror
#   named by --build-arg PIP_INDEX_URL=...), still hash-checked.
#
# Classic builder syntax only (no BuildKit: no RUN --mount, no heredocs), so that the
# engines responders meet, old ones and ones without buildx, all build it.

ARG BASE=debian:bookworm-slim

# ---- stage 1, deps: a venv with the locked wheels ------------------------------------
# Separate stages so that the wheelhouse (63 MB, trivy alone 51 MB) never becomes a layer
# of the final image (a COPY followed by rm still ships the COPY's layer), and so that a
# change to our code rebuilds only the small pkg stage, not this one.
FROM ${BASE} AS deps
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/forensics
# --require-hashes: every wheel must match requirements-image.txt byte for byte, and every
# dependency must be in it (pip refuses an unpinned one in this mode). The glob lets the
# COPY pass without a wheelhouse/ (the registry path). setuptools, which is locked only to
# build our package, is set aside in /build for the pkg stage; the venv itself keeps
# neither pip nor setuptools (nothing imports them at run time; 23 MB).
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY requirements-image.txt wheelhouse/*.whl /wheelhouse/
RUN if [ -n "$(find /wheelhouse -name '*.whl' -print -quit)" ]; then \
      set -- --no-index --find-links /wheelhouse; \
    else \
      echo 'no wheelhouse/ in the build context: installing the locked wheels from' \
           "${PIP_INDEX_URL:-the default package index} (scripts/wheelhouse prepares one)" >&2; \
      set --; \
    fi \
 && pip=/opt/forensics/bin/pip \
 && $pip install "$@" --require-hashes -r /wheelhouse/requirements-image.txt \
 && mkdir /build && grep '^setuptools==' /wheelhouse/requirements-image.txt >/build/setuptools.txt \
 && $pip download "$@" --no-deps --require-hashes -r /build/setuptools.txt -d /build \
 && $pip uninstall -q -y setuptools \
 && /opt/forensics/bin/python -m pip uninstall -q -y pip \
 && /opt/forensics/bin/dive --version && /opt/forensics/bin/trivy --version \
 && rm -rf /wheelhouse

# ---- stage 2, pkg: our package, built by the image's own Python ----------------------
# A throw-away venv with the locked setuptools builds the wheel (no index, no build
# isolation), and installs it into /opt/forensics with --no-deps: every dependency is
# there already, and pip check fails the build if one is missing. Only our package's own
# files go on to the final stage, through /stage.
FROM deps AS pkg
# Marks this stage's leftover images, which scripts/build-image removes after a build.
LABEL io.forensic-container.stage=pkg
RUN python3 -m venv /build/venv \
 && /build/venv/bin/pip install -q --no-index --find-links /build --require-hashes \
      -r /build/setuptools.txt
COPY pyproject.toml README.m[d] /src/
COPY forensics/ /src/forensics/
RUN cd /src && { [ -e README.md ] || : >README.md; } \
 && pip=/build/venv/bin/pip \
 && $pip wheel -q --no-index --no-deps --no-build-isolation -w /build/dist /src \
 && $pip --python /opt/forensics/bin/python install --no-index --no-deps /build/dist/forensics-*.whl \
 && $pip --python /opt/forensics/bin/python check \
 && /opt/forensics/bin/python -c 'import forensics.cli, docker, typer, rich, psutil, r2pipe, volatility3' \
 && mkdir /stage && cd / && cp -a --parents /opt/forensics/bin/forensics \
      /opt/forensics/lib/python3*/site-packages/forensics \
      /opt/forensics/lib/python3*/site-packages/forensics-*.dist-info /stage/

# ---- stage 3: the appliance -----------------------------------------------------------
FROM ${BASE}
# gdb brings gcore; util-linux brings nsenter; procps and iproute2 give ps/ss for live
# state; file, binutils (readelf, objdump, strings) and yara look at binaries without
# running them; libfuzzy2 is ssdeep's C library (the pure-Python fallback is 40x slower).
# python3 is the interpreter the venv points at (same base, same package).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 gdb strace ltrace binutils file yara libfuzzy2 procps iproute2 util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=deps /opt/forensics /opt/forensics
COPY --from=pkg /stage/ /

# FORENSICS_APPLIANCE tells the package it runs as the appliance (it then looks for its
# own container and leaves it out of findings); FORENSICS_OUTPUT is the default output.
# No byte code is written at run time: the image's files stay as built.
ENV PATH=/opt/forensics/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    FORENSICS_APPLIANCE=1 \
    FORENSICS_OUTPUT=/evidence \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Fail the build, not the first triage, when a tool is missing from the image.
RUN forensics --help >/dev/null \
 && python3 -c "import ctypes; ctypes.CDLL('libfuzzy.so.2')" \
 && for t in gdb gcore strace ltrace readelf objdump strings file yara ps ss nsenter trivy dive; do \
      command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; \
    done

# No VOLUME: a declared one would leave an anonymous volume behind on the suspect host
# whenever /evidence is not mounted. The responder mounts /evidence explicitly.
WORKDIR /evidence

# Labels last: CREATED changes on every build and must not invalidate the layers above.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="forensic-container" \
      org.opencontainers.image.description="Forensic appliance for Docker hosts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# Runs as root: reading /host, other processes' memory and the engine's socket needs it.
# Nothing listens and nothing else runs: the entrypoint is the CLI itself.
ENTRYPOINT ["forensics"]
CMD ["--help"]
