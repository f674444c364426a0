#!/usr/bin/env bash
# Runs the Dagger module's e2e and test functions without an engine, in
# containers imitated as the engine makes them, with the commands,
# environments and command lines the module itself takes from
# fleet/containers (printed by fleet/cmd/fleet-containers), so that the two
# cannot drift apart. Needs root (it makes namespaces, then gives up the
# capabilities a container lacks).
#
#   bash ci/dagger-containers.sh [-instances N] [e2e] [test]   (default: both, N=3)
#
# What a Dagger exec is, and how it is imitated here:
# - root without CAP_NET_ADMIN and CAP_SYS_ADMIN (containerd's default
#   capability set): every command runs under
#   capsh --drop=cap_net_admin,cap_sys_admin, so it can neither create
#   network interfaces nor namespaces nor mount;
# - a mount namespace of its own (unshare -m), where the image's files are
#   imitated by bind mounts;
# - for the e2e function, every container (the origin, each Varnish service,
#   the test container) in a network namespace of its own, IPv4 only, on one
#   bridge (in a namespace of its own too: nothing touches this machine's
#   network), each reaching the others by their service binding names
#   (/etc/hosts: origin, cdn-1, ...).
#
# (a) e2e: the origin runs the origin's command (go run
#     ./fleet/cmd/fleet-origin); each Varnish service runs varnishd with the
#     service's exact command line and token environment, as user varnish
#     (the image's user), its VCL at /etc/varnish/default.vcl and varnishd's
#     default working directory on a tmpfs; the test container has an empty
#     /usr/sbin (no varnishd anywhere), checks that, and runs the e2e
#     command with its environment. Its output must show every scenario
#     passed and none skipped (the check the e2e function makes).
# (b) test: the test function's commands (ci/deps.sh, then ci/test.sh, the
#     whole suite) with its environment, in a mount namespace of its own
#     without the two capabilities, so every fleet runs on loopback
#     addresses, as in the engine.
#
# What it cannot imitate: the images' contents (this machine's Debian 12
# varnish 7.1, Go and tools stand in for varnish:7.7.3 and golang:1.25.5:
# a VCL or vmod only 7.7 refuses, or a package missing from the Go image,
# shows up on the engine alone), and the engine's network (its DNS server
# for service bindings, its 10.87.0.0/16 subnet, its route to the internet
# and to the host's services; here the test container reaches only the
# other containers, and the Go module cache must already hold what the
# tests need, which the first ci/test.sh run of .ci/run fetched).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

n=3
want=()
while [ $# -gt 0 ]; do
  case $1 in
  -instances) n=$2; shift ;;
  e2e | test) want+=("$1") ;;
  *) echo "usage: $0 [-instances N] [e2e] [test]" >&2; exit 2 ;;
  esac
  shift
done
[ ${#want[@]} -gt 0 ] || want=(e2e test)
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (it makes namespaces, then drops the capabilities a container lacks)" >&2; exit 1; }

# unshare, setpriv (util-linux), capsh (libcap2-bin), ip (iproute2), curl.
need=()
command -v unshare >/dev/null || need+=(util-linux)
[ -x /usr/sbin/capsh ] || command -v capsh >/dev/null || need+=(libcap2-bin)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
chmod 755 "$work"
id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
spaces=()
# teardown stops what runs in the namespaces made here (everything there
# was started here) and removes them.
teardown() {
  local ns p
  for ns in "${spaces[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for ns in "${spaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  spaces=()
}
cleanup() {
  teardown
  rm -rf "$work"
}
trap cleanup EXIT

# What the module runs, from fleet/containers.
go build -o "$work/fleet-containers" ./fleet/cmd/fleet-containers
spec() { "$work/fleet-containers" -instances "$n" "$@"; }
# load ARRAY KIND WHAT: ARRAY gets spec KIND WHAT's NUL-separated list.
load() {
  spec "$2" "$3" >"$work/list"
  mapfile -d '' "$1" <"$work/list"
}
# capsh leaves with /usr/sbin, which the test container hides: a copy runs.
cp "$(command -v capsh || echo /usr/sbin/capsh)" "$work/capsh"
mkdir "$work/empty"

# contain NETNS USER [bind SRC DST | tmpfs DIR OWNER]... -- CMD...: runs CMD in
# NETNS (none: this machine's) and a mount namespace of its own with those
# mounts, as USER, without CAP_NET_ADMIN and CAP_SYS_ADMIN.
contain() {
  local ns=$1 user=$2
  shift 2
  local pre=()
  [ "$ns" = none ] || pre=(ip netns exec "$ns")
  # shellcheck disable=SC2016 # the script expands its own arguments
  "${pre[@]}" unshare -m --propagation private bash -c '
    set -euo pipefail
    capsh=$1 user=$2
    shift 2
    while [ "$1" != -- ]; do
      case $1 in
      bind) mount --bind "$2" "$3"; shift 3 ;;
      tmpfs) mount -t tmpfs -o "mode=0755,uid=$(id -u "$3"),gid=$(id -g "$3")" tmpfs "$2"; shift 3 ;;
      *) echo "contain: unknown mount $1" >&2; exit 2 ;;
      esac
    done
    shift
    as=()
    [ "$user" = root ] || as=(--user="$user")
    exec "$capsh" --drop=cap_net_admin,cap_sys_admin "${as[@]}" -- -c "exec \"\$@\"" container "$@"
  ' contain "$work/capsh" "$user" "$@"
}

# wait_tcp NETNS ADDR PORT PID LOG: polls until ADDR:PORT accepts, for 3
# minutes, while process PID runs (else shows LOG).
wait_tcp() {
  local deadline=$((SECONDS + 180))
  # shellcheck disable=SC2016 # the script expands its own arguments
  until ip netns exec "$1" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null; do
    if ! kill -0 "$4" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "nothing accepts connections on $2:$3; the container's output:" >&2
      cat "$5" >&2
      return 1
    fi
    sleep 0.2
  done
}

imitate_e2e() {
  echo "== e2e: the e2e function's containers ($n Varnish services), imitated"
  local net=ci-dagger-$id-net
  ip netns add "$net"
  spaces+=("$net")
  ip -n "$net" link set lo up
  ip -n "$net" link add br0 type bridge
  ip -n "$net" addr add 10.87.0.1/24 dev br0
  ip -n "$net" link set br0 up
  # container NAME K: a network namespace on the bridge with 10.87.0.K.
  container() {
    local ns=ci-dagger-$id-$1
    ip netns add "$ns"
    spaces+=("$ns")
    ip link add "v$id$2" netns "$net" type veth peer name eth0 netns "$ns"
    ip -n "$net" link set "v$id$2" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.87.0.$2/24" dev eth0
    ip -n "$ns" link set eth0 up
  }
  # The service bindings, as every container resolves them.
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n10.87.0.2\torigin\n'
    for i in $(seq 1 "$n"); do printf '10.87.0.%d\tcdn-%d\n' $((i + 2)) "$i"; done
  } >"$work/hosts"
  chmod 644 "$work/hosts"

  local -a args env
  load args args origin
  load env env origin
  container origin 2
  contain "ci-dagger-$id-origin" root bind "$work/hosts" /etc/hosts -- env "${env[@]}" "${args[@]}" >"$work/origin.log" 2>&1 &
  echo "origin: ${args[*]}"
  wait_tcp "$net" 10.87.0.2 8080 $! "$work/origin.log"

  load args args varnish
  load env env varnish
  echo "Varnish services: ${args[*]} (environment: ${env[*]%%=*})"
  mkdir -p /var/lib/varnish /etc/varnish
  [ -e /etc/varnish/default.vcl ] || : >/etc/varnish/default.vcl # a mount point
  local pids=()
  for i in $(seq 1 "$n"); do
    spec vcl "$i" >"$work/cdn-$i.vcl"
    chmod 644 "$work/cdn-$i.vcl"
    container "cdn-$i" $((i + 2))
    contain "ci-dagger-$id-cdn-$i" varnish bind "$work/hosts" /etc/hosts bind "$work/cdn-$i.vcl" /etc/varnish/default.vcl \
      tmpfs /var/lib/varnish varnish -- env "${env[@]}" "${args[@]}" >"$work/cdn-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    wait_tcp "$net" "10.87.0.$((i + 2))" 9000 "${pids[$((i - 1))]}" "$work/cdn-$i.log"
  done

  load args args e2e
  load env env e2e
  container e2e $((n + 3))
  local box=("ci-dagger-$id-e2e" root bind "$work/hosts" /etc/hosts bind "$work/empty" /usr/sbin)
  # The test container is what the engine makes: no varnishd anywhere, and
  # root that cannot create a network interface.
  # shellcheck disable=SC2016 # expanded in the container
  contain "${box[@]}" -- bash -c '
    if p=$(command -v varnishd) || [ -e /usr/sbin/varnishd ] || [ -e /sbin/varnishd ]; then echo "varnishd is here: $p" >&2; exit 1; fi
    if ip link add cdnpurge-ci type dummy 2>/dev/null; then echo "this root can create interfaces" >&2; exit 1; fi
    echo "test container: no varnishd, $(grep CapEff /proc/self/status)"'
  echo "${env[*]} ${args[*]}" | sed 's/CDNPURGE_E2E_TOKEN=[^ ]*/CDNPURGE_E2E_TOKEN=(secret)/'
  local rc=0
  contain "${box[@]}" -- env "${env[@]}" "${args[@]}" 2>&1 | tee "$work/e2e.out" || rc=$?
  [ "$rc" -eq 0 ] || { echo "the e2e function's tests failed (exit $rc)" >&2; return 1; }
  spec check-e2e <"$work/e2e.out"
  teardown
}

imitate_test() {
  echo "== test: the test function's commands, imitated (a mount namespace of its own, no CAP_NET_ADMIN, no CAP_SYS_ADMIN)"
  local -a args env
  for what in test-setup test; do
    load args args "$what"
    load env env "$what"
    echo "+ ${env[*]} ${args[*]}"
    contain none root -- env "${env[@]}" "${args[@]}"
  done
}

for w in "${want[@]}"; do
  "imitate_$w"
done
