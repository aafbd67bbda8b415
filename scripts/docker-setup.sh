#!/usr/bin/env bash
# Make a real Docker engine, a local registry and a Python base image available, idempotently.
#
#   scripts/docker-setup.sh            # prints the base image reference (pinned by digest) on stdout
#
# What it does, skipping whatever already works (docs/replay.md explains each step, to do it by hand):
#   1. an engine: `docker info` answers, else install docker.io from apt and start
#      `dockerd --bridge=none --iptables=false` (no bridge: private-range traffic is forbidden here);
#   2. a base image: `python:3.11-slim` when the engine can pull it (then nothing else is installed);
#      otherwise a Debian bookworm root filesystem with python3 built by debootstrap, imported, and
#      pushed to a real registry (Debian's docker-registry) on 127.0.0.1:5000, so that replays pin it
#      by digest;
#   3. writes the reference to $ENVSNAP_CACHE/base-image (default .cache/docker/base-image).
# Everything is cached between runs: the rootfs tarball, the registry's storage and the engine's images.
set -euo pipefail

CACHE=${ENVSNAP_CACHE:-$(pwd)/.cache/docker}
STATE=${ENVSNAP_DOCKER_STATE:-/var/lib/envsnap-docker}
REGISTRY=127.0.0.1:5000
REPO=bookworm-python
TAG=3.11
mkdir -p "$CACHE" "$STATE"
log() { echo "docker-setup: $*" >&2; }

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_up; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io from apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
  fi
  log "starting dockerd --bridge=none --iptables=false"
  setsid dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$STATE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || { log "dockerd did not start; see $STATE/dockerd.log"; tail -5 "$STATE/dockerd.log" >&2; exit 3; }
fi

# 2. A base image from an earlier run that the engine still has: nothing to do.
if [ -s "$CACHE/base-image" ] && docker image inspect "$(cat "$CACHE/base-image")" >/dev/null 2>&1; then
  registry_ok=1
  case "$(cat "$CACHE/base-image")" in
    "$REGISTRY"/*) curl -fsS -m 3 "http://$REGISTRY/v2/" >/dev/null 2>&1 || registry_ok=0 ;;
  esac
  if [ "$registry_ok" = 1 ]; then cat "$CACHE/base-image"; exit 0; fi
fi

# 2a. A machine that can pull the official slim image needs nothing else.
if [ "${ENVSNAP_TRY_PULL:-1}" = 1 ] && timeout 20 docker pull -q python:3.11-slim >/dev/null 2>&1; then
  ref=$(docker image inspect --format '{{index .RepoDigests 0}}' python:3.11-slim)
  echo "$ref" >"$CACHE/base-image"
  echo "$ref"
  exit 0
fi

# 2b. The local registry on loopback.
registry_up() { curl -fsS -m 3 "http://$REGISTRY/v2/" >/dev/null 2>&1; }
if ! registry_up; then
  if ! command -v docker-registry >/dev/null 2>&1; then
    log "installing docker-registry from apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >&2
  fi
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: $REGISTRY
YML
  log "starting docker-registry on $REGISTRY"
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 30); do registry_up && break; sleep 0.5; done
  registry_up || { log "the registry did not start; see $STATE/registry.log"; exit 3; }
fi

# 2c. The base image, by digest. Reuse it when the registry already serves it.
digest_of() { docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1" 2>/dev/null \
  | grep "^$REGISTRY/$REPO@" | head -1; }
ref=$(digest_of "$REGISTRY/$REPO:$TAG" || true)
if [ -n "$ref" ] && curl -fsS -m 3 -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$REPO/manifests/${ref#*@}"; then
  echo "$ref" >"$CACHE/base-image"; echo "$ref"; exit 0
fi
if ! docker image inspect "$REGISTRY/$REPO:$TAG" >/dev/null 2>&1; then
  tarball="$STATE/$REPO-$TAG.rootfs.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
      log "installing debootstrap from apt"; apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
    mirror=$(grep -hoE '^URIs: *http[^ ]*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    rootfs="$STATE/rootfs.tmp"
    rm -rf "$rootfs"
    log "debootstrap bookworm (python3) from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
      >"$STATE/debootstrap.log" 2>&1 || { log "debootstrap failed; see $STATE/debootstrap.log"; exit 3; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing the base image"
  docker import "$tarball" "$REGISTRY/$REPO:$TAG" >/dev/null
fi
log "pushing $REGISTRY/$REPO:$TAG"
docker push -q "$REGISTRY/$REPO:$TAG" >/dev/null
ref=$(digest_of "$REGISTRY/$REPO:$TAG")
[ -n "$ref" ] || { log "the push gave no digest"; exit 3; }
echo "$ref" >"$CACHE/base-image"
echo "$ref"
