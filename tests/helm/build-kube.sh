#!/usr/bin/env bash
# Builds kube-apiserver and kubectl of Kubernetes $1 (e.g. 1.37.2) into $2.
#
# k8s.io/kubernetes replaces its 33 staging modules (k8s.io/api, ...) with
# directories of its own repository, so `go install k8s.io/kubernetes/...@v1.x`
# refuses it. A wrapper module that requires k8s.io/kubernetes and points the
# same replaces at the published staging modules (v0.x of the same release)
# builds it. The version is stamped in, else the server says v0.0.0 and Helm's
# kubeVersion checks fail.
set -euo pipefail
version=$1 out=$2
staging=v0.${version#1.}
mkdir -p "$out/src"
cd "$out/src"
gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
{
  echo "module statuswatch.test/kube"
  echo
  echo "go $(sed -n 's/^go //p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes v$version"
  echo
  echo "replace ("
  sed -n 's|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$|\t\1 => \1 '"$staging"'|p' "$gomod"
  echo ")"
} > go.mod
pkg=k8s.io/component-base/version
ldflags="-X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$version" | cut -d. -f2)"
ldflags="$ldflags -X $pkg.gitTreeState=clean -s -w"
GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
rm -rf "$out/src"
