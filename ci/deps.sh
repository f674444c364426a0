#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when missing:
# varnish (varnishd, varnishtest), varnish-modules (vmod xkey, for tag purges),
# iproute2 (ip netns), libcap2-bin (capsh: tests run without the capabilities a
# container lacks), wrk and dnsutils (the benchmark baselines), curl, time, and
# zsh and fish (the CLI's completion scripts are tested in each shell).
# Needs root or sudo; does nothing when all are there.
set -euo pipefail
need=()
command -v varnishd >/dev/null || need+=(varnish)
ls /usr/lib/*/varnish/vmods/libvmod_xkey.so >/dev/null 2>&1 || need+=(varnish-modules)
command -v ip >/dev/null || need+=(iproute2)
command -v capsh >/dev/null || [ -x /usr/sbin/capsh ] || need+=(libcap2-bin)
command -v wrk >/dev/null || need+=(wrk)
command -v dig >/dev/null || need+=(dnsutils)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} (Debian packages)" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # The package starts a system varnishd on :6081 that nothing here uses.
  $sudo systemctl disable --now varnish >/dev/null 2>&1 || true
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  echo "note: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
