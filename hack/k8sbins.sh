#!/usr/bin/env bash
# Builds the kube-apiserver, kube-controller-manager and etcd that the e2e tests
# run, from the Go module proxy, using the wrapper modules in hack/k8sbins/
# (their go.mod/go.sum pin every version). Idempotent: skips the build when the
# binaries exist and were built from the same go.mod/go.sum files.
# Prints the directory holding the binaries.
#
#   K8SBINS_DIR   where to put them (default .cache/k8s/bin)
#   K8SBINS_JOBS  parallel build jobs (default: number of CPUs)
#
# A cold build takes about 10 minutes on 2 cores and 2.5 GB of memory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/hack/k8sbins"
bin="${K8SBINS_DIR:-$root/.cache/k8s/bin}"
jobs="${K8SBINS_JOBS:-$(nproc 2>/dev/null || echo 2)}"
stamp="$bin/.stamp"

inputs=("$src/go.mod" "$src/go.sum" "$src/tools.go"
	"$src/etcd/go.mod" "$src/etcd/go.sum" "$src/etcd/tools.go"
	"$root/hack/k8sbins.sh")
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"

up_to_date() {
	[[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/etcd" ]] &&
		[[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]
}

mkdir -p "$bin"
if up_to_date; then
	echo "$bin"
	exit 0
fi

# One build at a time: a second `make test` waits for the first build.
exec 9>"$bin/.lock"
flock 9
if up_to_date; then
	echo "$bin"
	exit 0
fi

tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

export GOWORK=off GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export GOMAXPROCS="$jobs"
build=(go build -p "$jobs")

echo "k8sbins: building etcd, kube-apiserver, kube-controller-manager into $bin (cold: ~10 min)" >&2
start=$SECONDS
(cd "$src/etcd" && "${build[@]}" -ldflags '-s -w' -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

kver="$(cd "$src" && go list -m -f '{{.Version}}' k8s.io/kubernetes)" # e.g. v1.37.2
kmajor="${kver#v}" && kmajor="${kmajor%%.*}"
kminor="${kver#v*.}" && kminor="${kminor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=$kmajor -X $vpkg.gitMinor=$kminor -X $vpkg.gitTreeState=clean"
(cd "$src" && "${build[@]}" -ldflags "$ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)

mv -f "$tmp/etcd" "$tmp/kube-apiserver" "$tmp/kube-controller-manager" "$bin/"
echo "$want" >"$stamp"
echo "k8sbins: built in $((SECONDS - start)) s" >&2
echo "$bin"
