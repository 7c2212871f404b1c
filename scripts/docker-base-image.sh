#!/usr/bin/env bash
# Makes the Debian base image the Docker tests build on, `local/debian:bookworm`, without an
# image registry: debootstrap (minbase) from the mirror in apt's own sources, then
# `docker import`. Slow the first time (minutes), so it is cached twice, both keyed by what
# goes into it: the image itself (label onair.base-key) in the engine's data root, and the
# root filesystem's tarball in CACHE_DIR, imported again when the engine lost the image.
#
#   DOCKER_HOST=unix:///path/docker.sock scripts/docker-base-image.sh CACHE_DIR
set -euo pipefail
CACHE_DIR="${1:?usage: docker-base-image.sh CACHE_DIR}"
SUITE=bookworm
IMAGE="local/debian:$SUITE"
# The runtime stage's packages beyond minbase (Dockerfile, runtime-base: it skips apt when
# they are there); minbase already holds libstdc++6 (apt needs it).
INCLUDE=ca-certificates,libopus0,libvpx7,libwebrtc-audio-processing1,libasound2
DOCKER="${DOCKER:-docker}"

# The first `deb` source of apt's own configuration that carries SUITE with component main,
# from deb822 files (*.sources) or one-line lists (*.list).
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && (" " comps " ") ~ / main /)
          { split(uris, u, " "); print u[1]; found = 1; exit }
        types = ""; uris = ""; suites = ""; comps = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
      END { if (!found) flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    awk -v suite="$SUITE" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) != suite) next
      for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
    }' "$f"
  done
}
MIRROR="$(apt_mirror | head -n 1)"
[ -n "$MIRROR" ] || { echo "no deb source for $SUITE (main) in apt's sources" >&2; exit 1; }

KEY="$(printf '%s\n' "$SUITE" minbase "$INCLUDE" "$MIRROR" "$(sha256sum "$0" | cut -c1-16)" \
  | sha256sum | cut -c1-16)"
have="$($DOCKER image inspect "$IMAGE" --format '{{index .Config.Labels "onair.base-key"}}' 2>/dev/null || true)"
if [ "$have" = "$KEY" ]; then
  echo "$IMAGE is cached (key $KEY)" >&2
  exit 0
fi

mkdir -p "$CACHE_DIR"
TARBALL="$CACHE_DIR/debian-$SUITE-minbase-$KEY.tar.gz"
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed" >&2; exit 1; }
  rootfs="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs" "$TARBALL.part"' EXIT
  echo "debootstrap --variant=minbase --include=$INCLUDE $SUITE from $MIRROR (minutes)" >&2
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" >&2
  # What an image does not need: downloaded packages and package lists.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  # Old tarballs of other keys are dead weight.
  find "$CACHE_DIR" -maxdepth 1 -name "debian-$SUITE-minbase-*.tar.gz" ! -name "$(basename "$TARBALL")" -delete
  # mktemp made the root 0700; the image's / must be searchable by every user.
  chmod 0755 "$rootfs"
  tar --numeric-owner -C "$rootfs" -c . | gzip -1 > "$TARBALL.part"
  mv "$TARBALL.part" "$TARBALL"
fi
echo "importing $TARBALL as $IMAGE" >&2
$DOCKER import --change "LABEL onair.base-key=$KEY" --change 'CMD ["bash"]' "$TARBALL" "$IMAGE" >/dev/null
