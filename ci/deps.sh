#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when missing:
# varnish (varnishd, varnishtest), varnish-modules (vmod xkey, for tag purges),
# nginx with libnginx-mod-http-cache-purge and squid (the caches of the "Works
# with" end-to-end tests), iproute2 (ip netns), libcap2-bin (capsh: tests run
# without the capabilities a container lacks), wrk and dnsutils (the benchmark
# baselines), curl, jq (the docs' serve examples), time, and zsh and fish (the
# CLI's completion scripts are tested in each shell). Needs root or sudo; does
# nothing when all are there.
#
# The packages would start system services (varnishd on :6081, nginx on :80,
# squid on :3128) that nothing here uses: they are kept from starting while
# installing, and stopped and disabled after. Tests start their own instances
# on ports the kernel chooses.
set -euo pipefail
need=()
command -v varnishd >/dev/null || need+=(varnish)
ls /usr/lib/*/varnish/vmods/libvmod_xkey.so >/dev/null 2>&1 || need+=(varnish-modules)
[ -x /usr/sbin/nginx ] || need+=(nginx)
ls /usr/lib/nginx/modules/ngx_http_cache_purge_module.so >/dev/null 2>&1 || need+=(libnginx-mod-http-cache-purge)
[ -x /usr/sbin/squid ] || need+=(squid)
command -v ip >/dev/null || need+=(iproute2)
command -v capsh >/dev/null || [ -x /usr/sbin/capsh ] || need+=(libcap2-bin)
command -v wrk >/dev/null || need+=(wrk)
command -v dig >/dev/null || need+=(dnsutils)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} (Debian packages)" >&2
  # Keep the packages' services from starting (invoke-rc.d asks this
  # script), unless the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# cdnpurge ci/deps.sh: no service starts while installing\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # Whatever started anyway (a machine whose policy allows it): stop it, and
  # keep it from starting at boot.
  for s in varnish nginx squid; do
    case " ${need[*]} " in *" $s "*) ;; *) continue ;; esac # only what was just installed
    $sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
    $sudo service "$s" stop >/dev/null 2>&1 || true
  done
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  echo "note: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
