#!/usr/bin/env bash
# Builds a local python:3.11 base image with no image registry: debootstrap a minimal Debian bookworm
# with Debian's python3.11, then `podman import` it. Usage: deploy/base-image.sh TAG [WORKDIR]
# Needs root, debootstrap and podman (make image-test installs them). Skips the work if TAG exists.
set -euo pipefail
tag=${1:?usage: base-image.sh TAG [WORKDIR]}
work=${2:-/tmp/xmodal-base}
if podman image exists "$tag"; then echo "base image $tag present"; exit 0; fi
root="$work/rootfs"
rm -rf "$root" && mkdir -p "$root"
debootstrap --variant=minbase bookworm "$root"
# apt-get (not --include) resolves the dependencies; python3.11-venv brings ensurepip for the builder
# stage's venv, ca-certificates lets pip verify TLS.
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -qq
chroot "$root" apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv ca-certificates
# Same names as the official python image, so the Dockerfile's `python3` works on either base.
ln -sf python3.11 "$root/usr/bin/python3"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/etc/resolv.conf"
tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$tag"
rm -rf "$root"
