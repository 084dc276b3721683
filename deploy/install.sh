#!/usr/bin/env bash
# The one install step behind `make setup` and the Dockerfile (tests/deploy/test_install.py checks that
# both call it and that nothing else installs packages):
#   deploy/install.sh system GROUP...            Debian packages, GROUP: runtime (shared libraries the
#                                                wheels need), data (the built-in corpora), dev (chromium
#                                                for the browser tests), container (tini, the images'
#                                                init), proxy (nginx, the proxy image),
#                                                image-test (podman and what it needs to build here).
#                                                Needs root and apt-get; without them it says what it
#                                                skipped.
#   deploy/install.sh python VENV VARIANT [--editable]
#                                                the package into VENV (made if missing), VARIANT: dev
#                                                (with test tools), cpu, gpu (faiss-gpu-cu12 in place of
#                                                faiss-cpu). pip's own PIP_* variables pick the sources.
# Run from the repository root (the directory with pyproject.toml).
set -euo pipefail

declare -A GROUPS_=(
  [runtime]="libcairo2 wordnet-base"
  [data]="openclipart-svg dataset-fashion-mnist opencv-doc"
  [dev]="chromium"
  [container]="tini"
  [proxy]="nginx-light"
  [image-test]="podman runc debootstrap"
)
declare -A WHAT=(
  [openclipart-svg]="corpus openclipart" [dataset-fashion-mnist]="corpus fashion-mnist"
  [opencv-doc]="part of corpora photos and videos" [chromium]="browser tests are skipped"
  [libcairo2]="clip-art SVGs do not render"
  [wordnet-base]="captions and answers on real photos (WordNet concepts) fail" [nginx-light]="no proxy"
  [tini]="the service, as PID 1, ignores SIGTERM"
  [podman]="no image test" [runc]="no image test" [debootstrap]="no image test"
)

system() {
  local want=() missing=() g p
  for g in "$@"; do
    [ -n "${GROUPS_[$g]+x}" ] || { echo "install.sh: unknown group $g (${!GROUPS_[*]})" >&2; exit 2; }
    read -ra pkgs <<<"${GROUPS_[$g]}"
    want+=("${pkgs[@]}")
  done
  for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then echo "system packages present: ${want[*]}"; return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "SKIPPED Debian packages: ${missing[*]} (needs root and apt-get); without them:"
    for p in "${missing[@]}"; do echo "  $p: ${WHAT[$p]}"; done
  fi
}

python_() {
  local venv=${1:?venv} variant=${2:?variant: dev, cpu or gpu} editable=${3:-}
  local py="$venv/bin/python" spec=.
  local pip=("$py" -m pip install -q --disable-pip-version-check)
  case $variant in
    dev) spec='.[dev]' ;;
    cpu) ;;
    gpu) spec='.[gpu]' ;;
    *) echo "install.sh: unknown variant $variant (dev, cpu, gpu)" >&2; exit 2 ;;
  esac
  [ -x "$py" ] || python3 -m venv "$venv"
  if [ "$editable" = --editable ]; then "${pip[@]}" -e "$spec"; else "${pip[@]}" "$spec"; fi
  if [ "$variant" = gpu ]; then
    # faiss-cpu and faiss-gpu-cu12 install the same `faiss` files: drop the CPU build, then lay the
    # GPU build's files down again at the version the extra resolved to.
    local v
    v=$("$py" -c 'import importlib.metadata as m; print(m.version("faiss-gpu-cu12"))')
    "$py" -m pip uninstall -y -q faiss-cpu
    "${pip[@]}" --force-reinstall --no-deps "faiss-gpu-cu12==$v"
  fi
}

cmd=${1:-}
shift || true
case $cmd in
  system) system "$@" ;;
  python) python_ "$@" ;;
  *) echo "usage: deploy/install.sh system GROUP... | python VENV dev|cpu|gpu [--editable]" >&2; exit 2 ;;
esac
