#!/usr/bin/env bash
# make image-test: builds the service image here with podman (no Docker, no image registry), runs it,
# waits for /readyz and checks a text search, a caption and the web page; then runs two replicas on
# one volume behind nginx, publishes a new index version while clients search through the proxy,
# and checks that both replicas serve it and no request failed. Not part of `make test` (it builds
# gigabytes). Removes every container and the volume it made, also on failure; keeps the images, so
# a second run reuses the base image and podman's layer cache. Prints the wall time of each step.
# Needs root. Settings: XMODAL_IMAGE_TEST_DIR (work dir), XMODAL_IMAGE_TEST_PORT (proxy port; the
# replicas take the next two), PIP_CERT_HOST (CA bundle pip trusts here).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${XMODAL_IMAGE_TEST_DIR:-/tmp/xmodal-image-test}
PORT=${XMODAL_IMAGE_TEST_PORT:-18600}
CA=${PIP_CERT_HOST:-/etc/ssl/certs/ca-certificates.crt}
BASE=localhost/xmodal-base:bookworm
TAG=localhost/xmodal:image-test
PROXY_TAG=localhost/xmodal-proxy:image-test
NAME=xmodal-it
VOL=$NAME-home
PY=$(command -v python3)
CHECK=("$PY" deploy/image_check.py)

t0=$(date +%s)
tl=$t0
timings=()
took() { # records how long the step that just ended took
  local now
  now=$(date +%s)
  timings+=("$1: $((now - tl)) s")
  echo "== $1: $((now - tl)) s (total $((now - t0)) s)"
  tl=$now
}

deploy/install.sh system image-test
mkdir -p "$WORK"
# podman here: runtime runc, and no default rlimits (setting them is refused in this sandbox)
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
pod() { podman --runtime runc "$@"; }

CONTAINERS=("$NAME-api" "$NAME-api1" "$NAME-api2" "$NAME-proxy")
cleanup() { # one at a time: podman 4.3's `rm -f A B` stops at a missing A and leaves B running
  local c
  for c in "${CONTAINERS[@]}"; do
    pod container exists "$c" && pod rm -f -t 5 "$c" >/dev/null
  done
  pod volume rm -f "$VOL" >/dev/null 2>&1 || true
}
logs() { # on failure: what the containers said
  local c
  for c in "${CONTAINERS[@]}"; do
    pod container exists "$c" && { echo "--- logs $c"; pod logs --tail 30 "$c" 2>&1; }
  done
  return 0
}
trap 'rc=$?; [ $rc -eq 0 ] || logs; cleanup; exit $rc' EXIT
cleanup
took "tools"

deploy/base-image.sh "$BASE" "$WORK/base"
took "base image (debootstrap + podman import)"

# pip inside the build uses this machine's sources (pip config: find-links, extra index URLs): local
# folders are bind-mounted read-only at the same paths, anything else passes through as a URL.
mounts=(-v "$CA:/etc/ssl/certs/host-ca.crt:ro")
build_args=(--build-arg "BASE=$BASE" --build-arg CORPORA= --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt)
pip_config=$("$PY" -m pip config list 2>/dev/null || true)
for key in find-links extra-index-url; do
  value=$(sed -n "s/^[^=]*\.$key='\(.*\)'$/\1/p" <<<"$pip_config" | tail -1)
  [ -n "$value" ] || continue
  for src in $value; do
    dir=${src#file://}
    [ "$key" = extra-index-url ] && [ "$dir" != "$src" ] && dir=$(dirname "$dir")  # .../simple -> its files
    [ "${dir:0:1}" = / ] && [ -d "$dir" ] && mounts+=(-v "$dir:$dir:ro")
  done
  var=PIP_$(tr 'a-z-' 'A-Z_' <<<"$key")
  build_args+=(--build-arg "$var=$value")
done
echo "build mounts: ${mounts[*]}"
# The builder stage is tagged too, so that pruning older runs' untagged layers (gigabytes each; only
# the ones this script labelled) keeps the cache the next run builds from.
common=(-q --format docker --network host --label xmodal.image-test=1)
pod build "${common[@]}" "${mounts[@]}" "${build_args[@]}" --target builder -t "$TAG-builder" .
pod build "${common[@]}" "${mounts[@]}" "${build_args[@]}" -t "$TAG" .
pod build "${common[@]}" --build-arg "BASE=$BASE" -f deploy/proxy.Dockerfile -t "$PROXY_TAG" .
pod image prune -f --filter label=xmodal.image-test=1 >/dev/null
pod image inspect "$TAG" --format 'image {{.Size}} bytes, user {{.Config.User}}, healthcheck {{.Config.Healthcheck.Test}}'
took "images built (service + proxy)"

# the one-shot indexer: a tiny model and index `seed` (v0001) made offline inside the image
pod volume create "$VOL" >/dev/null
pod run --rm --network host -v "$VOL:/data" "$TAG" /opt/xmodal/deploy/seed.sh 24
took "seed model + index v0001 in a container"

serve() { # NAME PORT: a replica on 127.0.0.1:PORT (the image's command, bound to loopback)
  # one torch thread each: two replicas, the proxy and the clients share this machine's 2 cores
  pod run -d --name "$1" --network host -v "$VOL:/data" -e XMODAL_PORT="$2" -e XMODAL_WATCH_INTERVAL_S=1 \
    -e XMODAL_TORCH_THREADS=1 "$TAG" xmodal serve --host 127.0.0.1 --watch >/dev/null
}
serve "$NAME-api" $((PORT + 1))
"${CHECK[@]}" wait "http://127.0.0.1:$((PORT + 1))" --timeout 180
pod healthcheck run "$NAME-api" && echo "HEALTHCHECK (/readyz): healthy"
took "one container ready"
pod run --rm -v "$VOL:/data" "$TAG" cat /data/seed-media/red-circle-001.png >"$WORK/probe.png"
"${CHECK[@]}" smoke "http://127.0.0.1:$((PORT + 1))" "$WORK/probe.png"
pod rm -f -t 5 "$NAME-api" >/dev/null
took "search, caption, web page checked"

serve "$NAME-api1" $((PORT + 1))
serve "$NAME-api2" $((PORT + 2))
printf 'server 127.0.0.1:%s max_fails=1 fail_timeout=5s;\n' $((PORT + 1)) $((PORT + 2)) >"$WORK/upstream.conf"
printf 'listen 127.0.0.1:%s;\n' "$PORT" >"$WORK/listen.conf"
pod run -d --name "$NAME-proxy" --network host \
  -v "$WORK/upstream.conf:/etc/nginx/xmodal-upstream.conf:ro" \
  -v "$WORK/listen.conf:/etc/nginx/xmodal-listen.conf:ro" "$PROXY_TAG" >/dev/null
for p in $((PORT + 1)) $((PORT + 2)) "$PORT"; do "${CHECK[@]}" wait "http://127.0.0.1:$p" --timeout 180; done
took "two replicas + proxy ready"

rm -f "$WORK/stop"
"${CHECK[@]}" load "http://127.0.0.1:$PORT" --seconds 300 --clients 4 --out "$WORK/load.json" \
  --stop-file "$WORK/stop" &
load_pid=$!
sleep 5
pod run --rm --network host -v "$VOL:/data" "$TAG" /opt/xmodal/deploy/seed.sh 36
for p in $((PORT + 1)) $((PORT + 2)); do
  "${CHECK[@]}" wait "http://127.0.0.1:$p" --timeout 60 --version seed=v0002
done
took "v0002 published and picked up by both replicas"
sleep 5  # searches on the new version too
touch "$WORK/stop"
wait "$load_pid"
"$PY" - "$WORK/load.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0, f"{r['failed']} of {r['requests']} requests failed: {r['failures']}"
assert set(r["versions"]) == {"v0001", "v0002"}, f"versions served during the swap: {r['versions']}"
print(f"no failed request: {r['requests']} searches through the proxy, versions {r['versions']}, "
      f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
EOF
took "load through the swap checked"

cleanup
left=$(pod ps -a --format '{{.Names}}' | grep -c "^$NAME-" || true)
[ "$left" = 0 ] || { echo "FAIL: $left containers left running" >&2; exit 1; }
took "stopped and removed"
echo "image test passed in $(($(date +%s) - t0)) s:"
printf '  %s\n' "${timings[@]}"
