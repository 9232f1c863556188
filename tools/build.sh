#!/usr/bin/env bash
# Builds the Go programs the tests run for real (docs/testing.md), from the pinned
# modules under tools/, into a cache outside the clone, and links them into
# .tools/bin/. The cache key is a hash of each module's go.mod, go.sum and sources,
# this script and the Go version, so a warm run only checks hashes and relinks.
#
#   bash tools/build.sh            build what is missing, link everything
#   bash tools/build.sh otelcol    only that program
#
# FLOBS_TOOLS_CACHE moves the cache (default: $XDG_CACHE_HOME/flobs-tools or
# ~/.cache/flobs-tools). Builds are offline-safe once the Go module cache is warm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cache=${FLOBS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flobs-tools}
bin=$root/.tools/bin
mkdir -p "$cache" "$bin"
command -v go >/dev/null || { echo "tools: go is not installed (apt-get install golang-go, or see docs/testing.md)" >&2; exit 2; }
goversion=$(go env GOVERSION)

# name -> "package [package…]" built from tools/<name>/, and the ldflags that stamp a
# version the programs print (promtool --version is how flobs tells 2.x from 3.x).
declare -A packages=(
  [prometheus]="github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool"
  [otelcol]="."
  [jaeger]="github.com/jaegertracing/jaeger/cmd/jaeger"
  [victoria-logs]="github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
)
declare -A tags=(
  # flobs emits only static_configs and file_sd_configs: the cloud SD SDKs are dead weight.
  [prometheus]="remove_all_sd"
)

module_version() { # module path -> version required by tools/<name>/go.mod
  awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "tools/$1/go.mod"
}

ldflags_for() {
  local name=$1 v
  case $name in
    prometheus)
      v=$(module_version prometheus github.com/prometheus/prometheus) # v0.316.0 = 3.16.0
      v=${v#v0.}; v="${v:0:1}.$((10#${v:1:2})).${v#*.}"
      echo "-s -w -X github.com/prometheus/common/version.Version=$v -X github.com/prometheus/common/version.Branch=flobs-tools -X github.com/prometheus/common/version.Revision=module"
      ;;
    *) echo "-s -w" ;;
  esac
}

build_one() {
  local name=$1 dir=tools/$1 key out tmp pkg
  key=$( { cat "$dir/go.mod" "$dir/go.sum"; find "$dir" -name '*.go' -print0 | sort -z | xargs -0r cat;
           cat tools/build.sh; echo "$goversion"; } | sha256sum | cut -c1-16)
  out=$cache/$name-$key
  if [ ! -f "$out/.complete" ]; then
    echo "tools: building $name (cold builds take minutes; see docs/testing.md)" >&2
    tmp=$(mktemp -d "$cache/.$name-XXXXXX")
    local start=$SECONDS
    local ldflags
    ldflags=$(ldflags_for "$name")
    for pkg in ${packages[$name]}; do
      local exe
      if [ "$pkg" = . ]; then exe=$name; else exe=${pkg##*/}; fi
      (cd "$dir" && go build -trimpath -tags "${tags[$name]:-}" -ldflags "$ldflags" -o "$tmp/$exe" "$pkg")
    done
    touch "$tmp/.complete"
    rm -rf "$out"
    mv "$tmp" "$out"
    echo "tools: built $name in $((SECONDS - start)) s" >&2
  fi
  local f
  for f in "$out"/*; do
    ln -sfn "$f" "$bin/$(basename "$f")"
  done
}

names=("$@")
[ "${#names[@]}" -gt 0 ] || names=(prometheus otelcol jaeger victoria-logs)
for name in "${names[@]}"; do
  [ -n "${packages[$name]+x}" ] || { echo "tools: unknown program $name" >&2; exit 2; }
  build_one "$name"
done
ls -l "$bin" | awk 'NR > 1 { print "tools: " $9 " -> " $11 }' >&2
