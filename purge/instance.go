package purge

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Instance is one member of the fleet: the address its cache listens on, or
// (in edge mode) the machine the platform's edge routes to.
type Instance struct {
	// Host is the instance's IP address. It is empty in edge mode, where
	// requests go to the URL's own host (or Job.Connect) and the edge routes
	// them to MachineID.
	Host string `json:"host,omitempty"`
	// Port is the port the cache listens on (0 in edge mode).
	Port int `json:"port,omitempty"`
	// Name is the host name a static instance was given as, when it was one.
	Name string `json:"name,omitempty"`
	// Region and MachineID identify a Fly.io machine in edge mode.
	Region    string `json:"region,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
}

// String is the instance's label in reports: REGION/MACHINE_ID in edge mode,
// host:port (IPv6 in brackets) otherwise.
func (i Instance) String() string {
	if i.MachineID != "" {
		return i.Region + "/" + i.MachineID
	}
	return net.JoinHostPort(i.Host, strconv.Itoa(i.Port))
}

// addr is what to dial: host:port.
func (i Instance) addr() string { return net.JoinHostPort(i.Host, strconv.Itoa(i.Port)) }

// ParseInstance parses ADDR, ADDR:PORT, [IPv6], [IPv6]:PORT or a bare IPv6
// address; ADDR may be an IP address or a host name (Host then holds the
// name, which the job resolves to every address it has). defaultPort is
// used when the input has no port.
func ParseInstance(s string, defaultPort int) (Instance, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Instance{}, fmt.Errorf("instance %q: empty; give ADDR or ADDR:PORT, e.g. 10.0.0.7:9000 or [fdaa::3]:9000", s)
	}
	if strings.Contains(in, "/") {
		return Instance{}, fmt.Errorf("instance %q: give ADDR or ADDR:PORT, not a URL, e.g. 10.0.0.7:9000", s)
	}
	// A bare IPv6 address: more than one colon and no brackets.
	if !strings.HasPrefix(in, "[") && strings.Count(in, ":") > 1 {
		a, err := netip.ParseAddr(in)
		if err != nil {
			return Instance{}, fmt.Errorf("instance %q: not an IPv6 address (%v); write IPv6 with a port as [ADDR]:PORT", s, err)
		}
		return newInstance(s, a, "", defaultPort)
	}
	host, port := in, defaultPort
	if strings.HasPrefix(in, "[") || strings.Contains(in, ":") {
		h, p, err := net.SplitHostPort(in)
		if err != nil {
			if !strings.HasPrefix(in, "[") || !strings.HasSuffix(in, "]") {
				return Instance{}, fmt.Errorf("instance %q: %v; give ADDR, ADDR:PORT or [IPv6]:PORT", s, err)
			}
			h, p = in[1:len(in)-1], ""
		}
		host = h
		if p == "" && strings.HasSuffix(in, ":") {
			return Instance{}, fmt.Errorf("instance %q: port is empty; give ADDR:PORT", s)
		}
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return Instance{}, fmt.Errorf("instance %q: port %q is not a number", s, p)
			}
			port = n
		}
	}
	if strings.Contains(host, ":") || strings.HasPrefix(in, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return Instance{}, fmt.Errorf("instance %q: %q in brackets is not an IPv6 address", s, host)
		}
		return newInstance(s, a, "", port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return newInstance(s, a, "", port)
	}
	if _, ok := dns.IsDomainName(host); !ok || !validHostname(host) {
		return Instance{}, fmt.Errorf("instance %q: %q is neither an IP address nor a host name", s, host)
	}
	if port < 1 || port > 65535 {
		return Instance{}, fmt.Errorf("instance %q: port %d is out of range 1-65535", s, port)
	}
	return Instance{Host: strings.TrimSuffix(strings.ToLower(host), "."), Port: port}, nil
}

func newInstance(s string, a netip.Addr, name string, port int) (Instance, error) {
	if port < 1 || port > 65535 {
		return Instance{}, fmt.Errorf("instance %q: port %d is out of range 1-65535", s, port)
	}
	if err := instanceAddr(a); err != nil {
		return Instance{}, fmt.Errorf("instance %q: %w", s, err)
	}
	return Instance{Host: a.Unmap().String(), Port: port, Name: name}, nil
}

// instanceAddr refuses addresses no single cache can listen on (or that
// cannot be dialled as given).
func instanceAddr(a netip.Addr) error {
	switch why := badAddr(a); {
	case why == "":
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is %s: give the interface to reach it through, e.g. [%s%%eth0]", a, why, a)
	default:
		return fmt.Errorf("%s is %s, not an instance's", a.Unmap(), why)
	}
	return nil
}

// badAddr says, as a noun phrase, why a cannot be an instance's address,
// or "" when it can.
func badAddr(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	case a.IsMulticast():
		return "a multicast address"
	case a.Is4() && a.As4()[0] == 0:
		return `an address in 0.0.0.0/8 ("this network", RFC 1122: no host has one)`
	case a.Is4() && a.As4()[0] >= 240:
		return "a reserved address (240.0.0.0/4, RFC 1112)"
	case a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "":
		return "a link-local address without a zone (the interface it is on)"
	}
	return ""
}

// validHostname checks the letters-digits-hyphen form of a host name (and
// '_', which service names use).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// dualStack keeps the IPv4 addresses of a name that has both IPv4 and IPv6
// ones: a dual-stack host is one instance, to be purged once, and IPv4 is
// what every network routes (a Dagger function's has no IPv6). A name with
// addresses of one family keeps them all: each is an instance.
func dualStack(addrs []netip.Addr) []netip.Addr {
	v4 := slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !a.Unmap().Is4() })
	if len(v4) > 0 {
		return v4
	}
	return addrs
}

// lookupHost returns every address of a static instance's host name.
type lookupHost func(ctx context.Context, host string) ([]netip.Addr, error)

// expandStatic turns static instances into one instance per address: a
// name that lists several addresses is several instances (purging one of
// them would leave the others stale, the very problem this package
// solves).
func expandStatic(ctx context.Context, list []Instance, lookup lookupHost) ([]Instance, error) {
	out := make([]Instance, 0, len(list))
	for _, in := range list {
		if _, err := netip.ParseAddr(in.Host); err == nil {
			out = append(out, in)
			continue
		}
		addrs, err := lookup(ctx, in.Host)
		if err != nil {
			return nil, fmt.Errorf("instance %s: look up %s: %w", in, in.Host, err)
		}
		addrs = dualStack(addrs)
		if len(addrs) == 0 {
			return nil, fmt.Errorf("instance %s: %s has no addresses", in, in.Host)
		}
		for _, a := range addrs {
			if why := badAddr(a); why != "" {
				return nil, fmt.Errorf("instance %s: %s resolves to %s, %s, which cannot be an instance's", in, in.Host, a.Unmap(), why)
			}
			out = append(out, Instance{Host: a.Unmap().String(), Port: in.Port, Name: in.Host})
		}
	}
	return dedupe(out), nil
}

// dedupe sorts instances by address and port and drops repeats.
func dedupe(in []Instance) []Instance {
	slices.SortFunc(in, func(a, b Instance) int {
		if c := compareHost(a.Host, b.Host); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.MachineID, b.MachineID)
	})
	return slices.CompactFunc(in, func(a, b Instance) bool {
		return a.Host == b.Host && a.Port == b.Port && a.MachineID == b.MachineID
	})
}

func compareHost(a, b string) int {
	aa, errA := netip.ParseAddr(a)
	ba, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return aa.Compare(ba)
	}
	return strings.Compare(a, b)
}
