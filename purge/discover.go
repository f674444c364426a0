package purge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// RecordType selects the DNS records that list a fleet's instances.
type RecordType string

// The record types Discover understands.
const (
	RecordAAAA RecordType = "aaaa" // IPv6 addresses, as Fly.io's <app>.internal
	RecordA    RecordType = "a"    // IPv4 addresses
	RecordSRV  RecordType = "srv"  // targets and ports; targets resolved to A and AAAA
)

// ParseRecordType accepts aaaa, a or srv in any case.
func ParseRecordType(s string) (RecordType, error) {
	switch RecordType(strings.ToLower(strings.TrimSpace(s))) {
	case RecordAAAA:
		return RecordAAAA, nil
	case RecordA:
		return RecordA, nil
	case RecordSRV:
		return RecordSRV, nil
	}
	return "", fmt.Errorf("record type %q: use aaaa, a or srv", s)
}

func (t RecordType) qtype() uint16 {
	switch t {
	case RecordA:
		return dns.TypeA
	case RecordSRV:
		return dns.TypeSRV
	}
	return dns.TypeAAAA
}

// DefaultResolvConf is where Discover finds the system's resolver when
// Discovery.Resolver is empty.
const DefaultResolvConf = "/etc/resolv.conf"

// Discovery says how to find a fleet's instances.
type Discovery struct {
	// Name is the DNS name whose records list every instance (never the
	// public host, which reaches one instance only).
	Name string
	// Record is the record type to ask for; empty means AAAA.
	Record RecordType
	// Port is the instances' port for A and AAAA records (SRV records carry
	// their own). Zero means 80.
	Port int
	// Resolver is the DNS server as HOST:PORT (or HOST, port 53). Empty means
	// the nameservers of ResolvConf, each tried in turn when one does not
	// answer.
	Resolver string
	// ResolvConf is the resolver configuration file used when Resolver is
	// empty; empty means DefaultResolvConf.
	ResolvConf string
	// Timeout bounds each DNS exchange; zero means 3s.
	Timeout time.Duration
}

// ErrorKind tells discovery failures apart.
type ErrorKind string

// The ways discovery can fail.
const (
	KindConfig      ErrorKind = "config"      // bad name, record type or resolver setting
	KindNXDomain    ErrorKind = "nxdomain"    // the name does not exist
	KindNoRecords   ErrorKind = "no-records"  // the name exists, without records of that type
	KindServerError ErrorKind = "server"      // SERVFAIL, REFUSED or another error code
	KindTimeout     ErrorKind = "timeout"     // the resolver did not answer in time
	KindUnreachable ErrorKind = "unreachable" // the resolver could not be reached at all
	KindBadAnswer   ErrorKind = "bad-answer"  // the answer could not be used (CNAME loop, ...)
)

// DiscoveryError is the error Discover returns. Kind says what went wrong;
// the message says what to do about it.
type DiscoveryError struct {
	Kind     ErrorKind
	Name     string
	Record   RecordType
	Resolver string
	Hint     string
	Err      error
}

func (e *DiscoveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discover %s %s", strings.ToUpper(string(e.Record)), e.Name)
	if e.Resolver != "" {
		fmt.Fprintf(&b, " via resolver %s", e.Resolver)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *DiscoveryError) Unwrap() error { return e.Err }

const maxCNAMEHops = 8

// Discover looks up d.Name and returns every instance it lists, de-duplicated
// and in a stable order. Answers too large for UDP are fetched again over TCP,
// so fleets of thousands of instances are found whole. Zero instances is an
// error. Errors are *DiscoveryError.
func Discover(ctx context.Context, d Discovery) ([]Instance, error) {
	if d.Record == "" {
		d.Record = RecordAAAA
	}
	if d.Port == 0 {
		d.Port = 80
	}
	if d.Timeout <= 0 {
		d.Timeout = 3 * time.Second
	}
	fail := func(kind ErrorKind, hint string, err error) *DiscoveryError {
		return &DiscoveryError{Kind: kind, Name: d.Name, Record: d.Record, Resolver: d.Resolver, Hint: hint, Err: err}
	}
	if _, err := ParseRecordType(string(d.Record)); err != nil {
		return nil, fail(KindConfig, "", err)
	}
	name := strings.TrimSpace(d.Name)
	if name == "" {
		return nil, fail(KindConfig, "give the internal DNS name that lists every instance, e.g. my-app.internal", errors.New("no DNS name"))
	}
	if _, ok := dns.IsDomainName(name); !ok || strings.Contains(name, "/") || strings.Contains(name, ":") {
		return nil, fail(KindConfig, "give a DNS name such as my-app.internal, not a URL", fmt.Errorf("%q is not a DNS name", name))
	}
	if d.Port < 1 || d.Port > 65535 {
		return nil, fail(KindConfig, "", fmt.Errorf("port %d is out of range 1-65535", d.Port))
	}
	servers, err := resolverAddrs(d.Resolver, d.ResolvConf)
	if err != nil {
		return nil, fail(KindConfig, "", err)
	}
	server := strings.Join(servers, ", ")
	d.Resolver = server
	r := &resolver{servers: servers, timeout: d.Timeout}

	var out []Instance
	switch d.Record {
	case RecordSRV:
		out, err = r.srv(ctx, name)
	default:
		var addrs []netip.Addr
		addrs, err = r.addrs(ctx, name, d.Record.qtype())
		for _, a := range addrs {
			out = append(out, Instance{Host: a.String(), Port: d.Port})
		}
	}
	if err != nil {
		var de *DiscoveryError
		if errors.As(err, &de) {
			de.Name, de.Record, de.Resolver = d.Name, d.Record, server
			if de.Kind == KindNoRecords && de.Hint == "" {
				de.Hint = r.suggest(ctx, name, d.Record)
			}
			return nil, de
		}
		return nil, fail(KindBadAnswer, "", err)
	}
	out = dedupe(out)
	if len(out) == 0 {
		return nil, fail(KindNoRecords, r.suggest(ctx, name, d.Record), errors.New("no instances found"))
	}
	return out, nil
}

func dedupe(in []Instance) []Instance {
	slices.SortFunc(in, func(a, b Instance) int {
		if c := compareHost(a.Host, b.Host); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	return slices.Compact(in)
}

func compareHost(a, b string) int {
	aa, errA := netip.ParseAddr(a)
	ba, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return aa.Compare(ba)
	}
	return strings.Compare(a, b)
}

// resolverAddrs returns the DNS servers to ask: resolver alone when set,
// else the nameservers of conf.
func resolverAddrs(resolver, conf string) ([]string, error) {
	if resolver != "" {
		if _, _, err := net.SplitHostPort(resolver); err == nil {
			return []string{resolver}, nil
		}
		if a, err := netip.ParseAddr(strings.Trim(resolver, "[]")); err == nil {
			return []string{net.JoinHostPort(a.String(), "53")}, nil
		}
		if validHostname(resolver) {
			return []string{net.JoinHostPort(resolver, "53")}, nil
		}
		return nil, fmt.Errorf("resolver %q: give HOST:PORT, e.g. 127.0.0.1:53 or [fdaa::3]:53", resolver)
	}
	if conf == "" {
		conf = DefaultResolvConf
	}
	cc, err := dns.ClientConfigFromFile(conf)
	if err != nil {
		return nil, fmt.Errorf("read system resolver from %s: %w; pass --resolver HOST:PORT", conf, err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("no nameserver in %s; pass --resolver HOST:PORT", conf)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	out := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		out[i] = net.JoinHostPort(s, port)
	}
	return out, nil
}

type resolver struct {
	servers []string
	timeout time.Duration
}

// exchange asks each server in turn until one answers (whatever its answer).
func (r *resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var errs []error
	for _, s := range r.servers {
		resp, err := r.exchangeWith(ctx, s, name, qtype)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	var de *DiscoveryError
	errors.As(errs[len(errs)-1], &de)
	return nil, &DiscoveryError{Kind: de.Kind, Err: fmt.Errorf("no resolver answered: %w", errors.Join(errs...)), Hint: de.Hint}
}

// exchangeWith sends one query to server with EDNS0 over UDP and asks again
// over TCP when the answer is truncated.
func (r *resolver) exchangeWith(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(dns.DefaultMsgSize, false)

	udp := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: dns.DefaultMsgSize}
	resp, _, err := udp.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: r.timeout}
		resp, _, err = tcp.ExchangeContext(ctx, m, server)
		if err != nil {
			err = fmt.Errorf("answer truncated over UDP, and TCP failed: %w", err)
		}
	}
	if err != nil {
		return nil, classifyNetErr(ctx, err, server, r.timeout)
	}
	return resp, nil
}

func classifyNetErr(ctx context.Context, err error, server string, timeout time.Duration) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return &DiscoveryError{Kind: KindTimeout, Err: fmt.Errorf("stopped waiting for resolver %s: %w", server, ctx.Err())}
	case errors.As(err, &ne) && ne.Timeout():
		return &DiscoveryError{Kind: KindTimeout, Err: fmt.Errorf("resolver %s did not answer within %s", server, timeout),
			Hint: "check --resolver, or raise --dns-timeout"}
	default:
		return &DiscoveryError{Kind: KindUnreachable, Err: fmt.Errorf("resolver %s unreachable: %w", server, err),
			Hint: "check --resolver and that a DNS server listens there"}
	}
}

func rcodeErr(resp *dns.Msg, name string, qtype uint16) error {
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNameError:
		return &DiscoveryError{Kind: KindNXDomain, Err: fmt.Errorf("name %s does not exist (NXDOMAIN)", name),
			Hint: "check the spelling; on Fly.io it is <app>.internal"}
	default:
		rc := dns.RcodeToString[resp.Rcode]
		if rc == "" {
			rc = "rcode " + strconv.Itoa(resp.Rcode)
		}
		return &DiscoveryError{Kind: KindServerError, Err: fmt.Errorf("resolver answered %s for %s %s", rc, dns.TypeToString[qtype], name),
			Hint: "the resolver failed or refused the query; check that it serves this name"}
	}
}

// lookup asks for qtype records of name, following CNAMEs both inside one
// answer and across queries, and returns the records of that type.
func (r *resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	rrs, _, err := r.lookupExtra(ctx, name, qtype)
	return rrs, err
}

// lookupExtra is lookup that also returns the answer's additional section.
func (r *resolver) lookupExtra(ctx context.Context, name string, qtype uint16) ([]dns.RR, []dns.RR, error) {
	target := dns.Fqdn(name)
	seen := map[string]bool{}
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		resp, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, nil, err
		}
		if err := rcodeErr(resp, strings.TrimSuffix(target, "."), qtype); err != nil {
			return nil, nil, err
		}
		// Walk the CNAME chain inside the answer.
		cnames := map[string]string{}
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok {
				cnames[strings.ToLower(c.Hdr.Name)] = c.Target
			}
		}
		owner := strings.ToLower(target)
		for steps := 0; cnames[owner] != ""; steps++ {
			if steps > maxCNAMEHops || seen[owner] {
				return nil, nil, &DiscoveryError{Kind: KindBadAnswer, Err: fmt.Errorf("CNAME loop at %s", owner)}
			}
			seen[owner] = true
			owner = strings.ToLower(dns.Fqdn(cnames[owner]))
		}
		var out []dns.RR
		for _, rr := range resp.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, owner) {
				out = append(out, rr)
			}
		}
		if len(out) > 0 {
			return out, resp.Extra, nil
		}
		if owner == strings.ToLower(target) {
			return nil, nil, &DiscoveryError{Kind: KindNoRecords, Err: fmt.Errorf("name exists but has no %s records", dns.TypeToString[qtype])}
		}
		// The answer ended in a CNAME the server did not resolve: ask for it.
		target = owner
	}
	return nil, nil, &DiscoveryError{Kind: KindBadAnswer, Err: fmt.Errorf("more than %d CNAME hops", maxCNAMEHops)}
}

func (r *resolver) addrs(ctx context.Context, name string, qtype uint16) ([]netip.Addr, error) {
	rrs, err := r.lookup(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	return addrsOf(rrs, ""), nil
}

// addrsOf returns the addresses of the A and AAAA records among rrs, only
// those owned by owner when it is not empty.
func addrsOf(rrs []dns.RR, owner string) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if owner != "" && !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// srv resolves SRV records and then every target's A and AAAA records. A
// target with neither is an error: an instance the fleet lists must not be
// skipped silently.
func (r *resolver) srv(ctx context.Context, name string) ([]Instance, error) {
	rrs, extra, err := r.lookupExtra(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		if s.Target == "." {
			continue // RFC 2782: the service is decidedly not available here
		}
		// Addresses the server sent along save a query per target.
		found := oneFamily(addrsOf(extra, s.Target))
		var lastErr error
		for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
			if len(found) > 0 {
				break
			}
			a, err := r.addrs(ctx, s.Target, qt)
			var de *DiscoveryError
			if err != nil && !(errors.As(err, &de) && de.Kind == KindNoRecords) {
				lastErr = err
			}
			found = append(found, a...)
		}
		if len(found) == 0 {
			if lastErr == nil {
				lastErr = fmt.Errorf("SRV target %s has no A or AAAA records", s.Target)
			} else {
				lastErr = fmt.Errorf("SRV target %s: %w", s.Target, lastErr)
			}
			return nil, &DiscoveryError{Kind: KindBadAnswer, Err: lastErr, Hint: "every SRV target must resolve to an address"}
		}
		for _, a := range found {
			out = append(out, Instance{Host: a.String(), Port: int(s.Port)})
		}
	}
	return out, nil
}

// oneFamily keeps the IPv6 addresses when there are any, else the IPv4
// ones: an SRV target with both is one instance, to be purged once.
func oneFamily(addrs []netip.Addr) []netip.Addr {
	v6 := slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !a.Is6() })
	if len(v6) > 0 {
		return v6
	}
	return addrs
}

// suggest looks for records of the other types so that an empty answer can
// say which --record would work.
func (r *resolver) suggest(ctx context.Context, name string, tried RecordType) string {
	for _, t := range []RecordType{RecordAAAA, RecordA, RecordSRV} {
		if t == tried {
			continue
		}
		rrs, err := r.lookup(ctx, name, t.qtype())
		if err == nil && len(rrs) > 0 {
			return fmt.Sprintf("it has %s records: try --record %s", strings.ToUpper(string(t)), t)
		}
	}
	return "it has no AAAA, A or SRV records either; check the name and that instances are running"
}

// StaticInstances parses a list of ADDR[:PORT] strings (see ParseInstance)
// and de-duplicates them.
func StaticInstances(list []string, defaultPort int) ([]Instance, error) {
	if defaultPort == 0 {
		defaultPort = 80
	}
	out := make([]Instance, 0, len(list))
	for _, s := range list {
		in, err := ParseInstance(s, defaultPort)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, errors.New("no instances given")
	}
	return dedupe(out), nil
}
