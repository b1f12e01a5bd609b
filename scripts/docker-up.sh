#!/usr/bin/env bash
# Makes a Docker engine ready for Gantry's tests, doing only what is missing: installs Debian's
# docker.io when dockerd is absent, starts dockerd when `docker info` gets no answer, and builds
# the local test images with `docker import`. Nothing is ever pulled from a registry. Idempotent;
# run as root on Debian.
#
# Test images:
#   gantry-test/busybox:latest  Debian's busybox-static: /bin/busybox with a symlink per applet
#                               (sh, seq, wget, nc, httpd, stat, find, awk, …), /etc/passwd and
#                               /etc/group with root and nobody, /tmp (1777), /root. No CMD.
set -euo pipefail

log() { printf 'docker-up: %s\n' "$*" >&2; }

dockerd_log=/var/log/gantry-dockerd.log
busybox_image=gantry-test/busybox:latest

# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"

# The engine and its client.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  log "installing docker.io"
  apt_install docker.io
fi

# The daemon. It starts containerd itself when none runs.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $dockerd_log)"
  nohup dockerd >"$dockerd_log" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not answer within 60 s; the end of its log:"
    tail -n 20 "$dockerd_log" >&2 || true
    exit 1
  fi
fi

# A static busybox: the installed busybox-static package's, else one extracted from the package
# without installing it (it conflicts with Debian's dynamic busybox package).
static_busybox() {
  local workdir=$1
  if dpkg -s busybox-static >/dev/null 2>&1; then
    local installed
    installed=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n 1)
    if [[ -x "$installed" ]]; then
      printf '%s\n' "$installed"
      return
    fi
  fi
  apt_update_once
  (cd "$workdir" && apt-get download -qq busybox-static >/dev/null 2>&1)
  dpkg-deb -x "$workdir"/busybox-static_*.deb "$workdir/package"
  printf '%s\n' "$workdir/package/bin/busybox"
}

build_busybox_image() {
  local workdir rootfs busybox applet
  workdir=$(mktemp -d)
  busybox=$(static_busybox "$workdir")
  rootfs=$workdir/rootfs
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/root"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . | docker import - "$busybox_image" >/dev/null
  rm -rf "$workdir"
}

if ! docker image inspect "$busybox_image" >/dev/null 2>&1; then
  log "building $busybox_image with docker import"
  build_busybox_image
fi

log "ready: $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}')"
