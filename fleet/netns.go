package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// netns is one fleet's network: a bridge in the host namespace holding the
// origin's address, and one namespace per instance, each with its own IPv6
// ULA address on the bridge's subnet. Names carry this process's pid so that
// namespaces left by a crashed run can be swept.
type netns struct {
	id      string // 6 hex digits
	bridge  string
	prefix  netip.Prefix
	spaces  []string
	created []string // links created in the host namespace
}

const nsPrefix = "cdnpurge-"

// NetnsAvailable says whether this process can build a netns fleet, by
// building the smallest one: a bridge in this network namespace and a new
// network namespace, both removed at once (a probe killed half way is swept
// like any fleet of a dead process). nil means it can; otherwise the error
// says why not.
//
// Being root is not enough: a container's root (a Dagger function's exec, a
// docker container without --privileged) lacks CAP_NET_ADMIN and
// CAP_SYS_ADMIN, and creating either fails there.
func NetnsAvailable(ctx context.Context) error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns mode needs ip (apt-get install -y iproute2)")
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	id := hex.EncodeToString(b)
	// The names sweepNetns knows: the namespace carries this process's id
	// and the bridge's.
	bridge, ns := "cpb"+id, fmt.Sprintf("%s%d-%s-probe", nsPrefix, os.Getpid(), id)
	if err := ipCmd(ctx, "link", "add", bridge, "type", "bridge"); err != nil {
		return fmt.Errorf("cannot create network interfaces here (%s CAP_NET_ADMIN): %w", lacks(), err)
	}
	if err := ipCmd(ctx, "link", "del", bridge); err != nil {
		return fmt.Errorf("netns mode: remove the probe's bridge: %w", err)
	}
	if err := ipCmd(ctx, "netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create network namespaces here (%s CAP_SYS_ADMIN): %w", lacks(), err)
	}
	if err := ipCmd(ctx, "netns", "del", ns); err != nil {
		return fmt.Errorf("netns mode: remove the probe's namespace: %w", err)
	}
	return nil
}

// lacks words who lacks a capability: a user, or root in a container.
func lacks() string {
	if os.Geteuid() != 0 {
		return "not root: no"
	}
	return "root in a container, or another sandbox, without"
}

func ipCmd(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func newNetns(ctx context.Context) (*netns, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b)
	// fdcd:IIII:II00::/64 from the 24-bit id.
	prefix := netip.MustParsePrefix(fmt.Sprintf("fdcd:%s:%s00::/64", id[:4], id[4:]))
	n := &netns{id: id, bridge: "cpb" + id, prefix: prefix}
	if err := ipCmd(ctx, "link", "add", n.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	n.created = append(n.created, n.bridge)
	for _, args := range [][]string{
		{"link", "set", n.bridge, "up"},
		{"-6", "addr", "add", n.addr(1).String() + "/64", "dev", n.bridge, "nodad"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			n.close(context.Background())
			return nil, err
		}
	}
	return n, nil
}

// addr returns the i-th address of the subnet: 1 is the host (origin),
// instances start at 2.
func (n *netns) addr(i int) netip.Addr {
	a := n.prefix.Addr().As16()
	a[14], a[15] = byte(i>>8), byte(i)
	return netip.AddrFrom16(a)
}

// add creates namespace i with address addr(i+2) and returns its name.
func (n *netns) add(ctx context.Context, i int) (string, netip.Addr, error) {
	name := fmt.Sprintf("%s%d-%s-%d", nsPrefix, os.Getpid(), n.id, i)
	host := fmt.Sprintf("cpv%s%d", n.id, i)
	if len(host) > 15 {
		return "", netip.Addr{}, fmt.Errorf("netns: too many instances for interface names (%s)", host)
	}
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return "", netip.Addr{}, err
	}
	n.spaces = append(n.spaces, name)
	addr := n.addr(i + 2)
	for _, args := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", host + "p"},
		{"link", "set", host + "p", "netns", name},
		{"link", "set", host, "master", n.bridge, "up"},
		{"-n", name, "link", "set", host + "p", "name", "eth0"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "-6", "addr", "add", addr.String() + "/64", "dev", "eth0", "nodad"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return "", netip.Addr{}, err
		}
		if args[0] == "link" && args[1] == "add" {
			n.created = append(n.created, host)
		}
	}
	return name, addr, nil
}

// close removes the namespaces (their veth ends go with them) and the links
// created in the host namespace. Processes inside must be stopped first.
func (n *netns) close(ctx context.Context) error {
	var errs []string
	for _, s := range n.spaces {
		if err := ipCmd(ctx, "netns", "del", s); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// A veth whose other end went with its namespace disappears by itself,
	// possibly while we look: "Cannot find device" (or "No such device") is success.
	for _, l := range n.created {
		if err := ipCmd(ctx, "link", "del", l); err != nil && !strings.Contains(err.Error(), "Cannot find device") && !strings.Contains(err.Error(), "No such device") {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("netns cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

// sweepNetns removes namespaces and bridges left by runs whose process is
// gone (a test binary killed by a timeout, say), and returns their names.
func sweepNetns(ctx context.Context) []string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var removed []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, idAndIndex, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		// The namespace and its bridge. Its varnishd were stopped with their
		// fleet's directory (Sweep); whatever else runs inside was not
		// started by the fleet and is left alone.
		if ipCmd(ctx, "netns", "del", name) == nil {
			removed = append(removed, "netns "+name)
		}
		id, _, _ := strings.Cut(idAndIndex, "-")
		_ = exec.CommandContext(ctx, "ip", "link", "del", "cpb"+id).Run()
	}
	return removed
}
