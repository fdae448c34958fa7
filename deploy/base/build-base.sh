#!/usr/bin/env bash
# Build the image's base from Debian's own packages, for machines that cannot pull from a
# registry: a minimal bookworm root filesystem (python3 + venv, CA certificates, and the two
# runtime libraries OpenCV's wheel loads) made with mmdebstrap, imported as an image.
#
#   bash deploy/base/build-base.sh [TAG]      (default TAG: localhost/verity-base:bookworm)
#   podman build --format docker --build-arg BASE=localhost/verity-base:bookworm \
#     -f Containerfile -t verity:0.1.0 .
#
# Needs: mmdebstrap and podman (Debian: apt-get install mmdebstrap podman), a Debian mirror.
# MIRROR overrides the mirror (e.g. a snapshot.debian.org URL for a reproducible base).
set -euo pipefail
TAG=${1:-localhost/verity-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mmdebstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,libgl1,libglib2.0-0 \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$work/rootfs.tar" "$MIRROR"

podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$work/rootfs.tar" "$TAG"
echo "base image: $TAG"
