// Package fleet runs a local cache fleet like production's, for tests, the
// demo and anyone who wants one in their own Go tests (as httptest runs an
// HTTP server): an origin, a DNS server that lists every instance, and N
// real varnishd running the shipped VCL (or another), all stopped by Close.
//
// A fleet runs in one of three modes:
//
//   - netns: each varnishd in its own network namespace with its own IPv6
//     ULA address, all on the same port, found by AAAA: the production
//     topology (Fly.io's <app>.internal). Needs iproute2 and the
//     capabilities to create interfaces and namespaces (CAP_NET_ADMIN,
//     CAP_SYS_ADMIN): root on a machine, not root in a container.
//   - loopback: each varnishd on its own 127.0.x.y address, same port,
//     found by A records. Needs nothing special.
//   - external: instances started elsewhere (containers, say), given as a
//     list of addresses; the fleet only serves DNS over them.
//
// ModeAuto picks netns when this process can create a network namespace
// (NetnsAvailable tries) and loopback otherwise.
//
// Everything a fleet starts lives under one directory named after the
// process; when a process dies without closing its fleet (kill -9), the
// next Start, or Sweep, stops what it left and removes it.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
	"github.com/cdnpurge/cdnpurge/internal/loopback"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// Mode is how a fleet's instances are laid out.
type Mode string

// The modes.
const (
	ModeAuto     Mode = ""
	ModeNetns    Mode = "netns"
	ModeLoopback Mode = "loopback"
	ModeExternal Mode = "external"
)

// ParseMode accepts auto (or empty), netns, loopback and external.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "auto", ModeAuto:
		return ModeAuto, nil
	case ModeNetns, ModeLoopback, ModeExternal:
		return Mode(s), nil
	}
	return "", fmt.Errorf("fleet mode %q: use auto, netns, loopback or external", s)
}

// DNSName is the name every fleet's instances are listed under.
const DNSName = "fleet.cdnpurge.test"

// Options describe a fleet.
type Options struct {
	N    int  // instances; default 3
	Mode Mode // default auto
	// Token, when set, is every instance's PURGE_TOKEN.
	Token string
	// MaxAge is how long the origin lets caches keep content; default 1h.
	MaxAge time.Duration
	// Grace is how long instances may serve a copy past its TTL; default 10s.
	Grace time.Duration
	// Template is the VCL every instance runs (see varnish.RenderTemplate);
	// empty means the shipped one.
	Template string
	// Xkey renders the VCL with vmod xkey's tag purges (varnish.HasVmod
	// says whether varnishd has it).
	Xkey bool
	// Varnishd is the program; default from PATH (see varnish.Lookup).
	Varnishd string
	// Port is the instances' port; 0 picks a free one (9000 in netns mode).
	Port int
	// External lists instances started elsewhere (ModeExternal), as
	// ADDR[:PORT]; OriginAddr is then their origin, HOST:PORT, if the caller
	// wants origin hit counts.
	External   []string
	OriginAddr string
}

// Member is one instance of a fleet.
type Member struct {
	Name     string
	Instance purge.Instance
	Netns    string // netns mode: the namespace it runs in
	process  *varnish.Process
}

// Fleet is a running fleet. Close stops everything it started.
type Fleet struct {
	Mode    Mode
	Name    string           // DNS name listing every instance
	Record  purge.RecordType // the record type that lists them all
	Port    int
	Origin  *Origin
	Members []*Member
	// Resolver is the fleet's DNS server, HOST:PORT (UDP and TCP).
	Resolver string
	// NoNetns, when ModeAuto chose loopback, says why netns mode was not
	// available (see NetnsAvailable).
	NoNetns error

	dns       *dnsserver.Server
	dir       string // everything the fleet started, for Sweep
	net       *netns
	closeOnce sync.Once
	closeErr  error
}

// Start starts a fleet. When it fails, whatever it had started is stopped.
// It first sweeps what dead processes' fleets left behind.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.N == 0 {
		o.N = 3
	}
	if o.MaxAge == 0 {
		o.MaxAge = time.Hour
	}
	mode, noNetns := o.Mode, error(nil)
	if mode == ModeAuto {
		mode = ModeLoopback
		if len(o.External) > 0 {
			mode = ModeExternal
		} else if noNetns = NetnsAvailable(ctx); noNetns == nil {
			mode = ModeNetns
		}
	}
	_, _ = Sweep(ctx)
	f := &Fleet{Mode: mode, Name: DNSName, NoNetns: noNetns}
	if err := f.start(ctx, o); err != nil {
		if cerr := f.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return f, nil
}

func (f *Fleet) start(ctx context.Context, o Options) error {
	var err error
	if f.dir, err = newStateDir(); err != nil {
		return err
	}
	if f.dns, err = dnsserver.Start("127.0.0.1"); err != nil {
		return err
	}
	f.Resolver = f.dns.Addr
	switch f.Mode {
	case ModeExternal:
		err = f.startExternal(ctx, o)
	case ModeNetns:
		if err = NetnsAvailable(ctx); err == nil {
			err = f.startNetns(ctx, o)
		}
	case ModeLoopback:
		err = f.startLoopback(ctx, o)
	default:
		err = fmt.Errorf("fleet mode %q: use auto, netns, loopback or external", f.Mode)
	}
	if err != nil {
		return err
	}
	return f.listInDNS()
}

// listInDNS lists every instance under the fleet's name: A and AAAA records
// when all share a family, SRV records (with each target's address) when
// the families are mixed, so that one lookup finds them all.
func (f *Fleet) listInDNS() error {
	v4, v6 := 0, 0
	for _, m := range f.Members {
		if netip.MustParseAddr(m.Instance.Host).Is4() {
			v4++
		} else {
			v6++
		}
	}
	f.Record = purge.RecordAAAA
	switch {
	case v6 == 0:
		f.Record = purge.RecordA
	case v4 > 0:
		f.Record = purge.RecordSRV
	}
	for i, m := range f.Members {
		a := netip.MustParseAddr(m.Instance.Host)
		typ := "A"
		if a.Is6() {
			typ = "AAAA"
		}
		if f.Record != purge.RecordSRV {
			if err := f.dns.Add(fmt.Sprintf("%s. 5 IN %s %s", f.Name, typ, a)); err != nil {
				return err
			}
			continue
		}
		target := fmt.Sprintf("member-%d.%s.", i+1, f.Name)
		if err := f.dns.Add(fmt.Sprintf("%s 5 IN %s %s", target, typ, a),
			fmt.Sprintf("%s. 5 IN SRV 0 0 %d %s", f.Name, m.Instance.Port, target)); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fleet) startExternal(ctx context.Context, o Options) error {
	if len(o.External) == 0 {
		return errors.New("external fleet: no instances given")
	}
	port := o.Port
	if port == 0 {
		port = purge.DefaultPort
	}
	if o.OriginAddr != "" {
		f.Origin = &Origin{Addr: o.OriginAddr}
	}
	for i, s := range o.External {
		in, err := purge.ParseInstance(s, port)
		if err != nil {
			return fmt.Errorf("external fleet: %w", err)
		}
		if _, err := netip.ParseAddr(in.Host); err != nil {
			// A host name (a Dagger service binding, say): list its address.
			ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", in.Host)
			if lerr != nil || len(ips) == 0 {
				return fmt.Errorf("external fleet: instance %s: %v", in, lerr)
			}
			in.Name, in.Host = in.Host, ips[0].Unmap().String()
		}
		if f.Port == 0 {
			f.Port = in.Port
		}
		f.Members = append(f.Members, &Member{Name: fmt.Sprintf("external-%d", i+1), Instance: in})
	}
	return nil
}

func (f *Fleet) startLoopback(ctx context.Context, o Options) error {
	var err error
	if f.Origin, err = StartOrigin("127.0.0.1:0", o.MaxAge); err != nil {
		return err
	}
	// Another process may take the port between the check and varnishd's
	// bind: try a few ports.
	for try := 0; try < 5; try++ {
		port := o.Port
		if port == 0 {
			if port, err = loopback.FreePort(o.N); err != nil {
				return err
			}
		}
		f.Port = port
		err = f.startMembers(ctx, o, func(i int) (purge.Instance, []string, string, error) {
			return purge.Instance{Host: loopback.Addr(i), Port: port}, nil, "", nil
		}, f.Origin.Addr)
		if err == nil || o.Port != 0 {
			break
		}
		f.stopMembers()
	}
	return err
}

func (f *Fleet) startNetns(ctx context.Context, o Options) error {
	n, err := newNetns(ctx)
	if err != nil {
		return err
	}
	f.net = n
	// The origin listens on the bridge's address, which every namespace reaches.
	if f.Origin, err = StartOrigin(net.JoinHostPort(n.addr(1).String(), "0"), o.MaxAge); err != nil {
		return err
	}
	f.Port = o.Port
	if f.Port == 0 {
		f.Port = 9000 // every namespace has its own: the same port everywhere, as in production
	}
	return f.startMembers(ctx, o, func(i int) (purge.Instance, []string, string, error) {
		name, addr, err := n.add(ctx, i)
		if err != nil {
			return purge.Instance{}, nil, "", err
		}
		return purge.Instance{Host: addr.String(), Port: f.Port}, []string{"ip", "netns", "exec", name}, name, nil
	}, f.Origin.Addr)
}

// startMembers starts N varnishd at once; place gives each one's address,
// the command that wraps varnishd and its namespace.
func (f *Fleet) startMembers(ctx context.Context, o Options, place func(i int) (purge.Instance, []string, string, error), origin string) error {
	f.Members = make([]*Member, o.N)
	wraps := make([][]string, o.N)
	for i := range o.N {
		in, wrap, ns, err := place(i)
		if err != nil {
			return err
		}
		f.Members[i] = &Member{Name: fmt.Sprintf("cdn-%d", i+1), Instance: in, Netns: ns}
		wraps[i] = wrap
	}
	errs := make([]error, o.N)
	var wg sync.WaitGroup
	for i, m := range f.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.process, errs[i] = varnish.Start(ctx, varnish.Config{
				VCL:      varnish.VCL{Name: m.Name, Origin: origin, Grace: o.Grace, Xkey: o.Xkey},
				Template: o.Template,
				Listen:   m.Instance.String(),
				Token:    o.Token,
				Varnishd: o.Varnishd,
				Wrap:     wraps[i],
				Dir:      f.dir,
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WorkDir is the member's varnishd working directory (its -n, which
// varnishstat and varnishlog read); empty for an instance started
// elsewhere.
func (m *Member) WorkDir() string {
	if m.process == nil {
		return ""
	}
	return m.process.WorkDir()
}

func (f *Fleet) stopMembers() {
	var wg sync.WaitGroup
	for _, m := range f.Members {
		if m != nil && m.process != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = m.process.Stop()
			}()
		}
	}
	wg.Wait()
	f.Members = nil
}

// Instances returns every instance's address.
func (f *Fleet) Instances() []purge.Instance {
	out := make([]purge.Instance, len(f.Members))
	for i, m := range f.Members {
		out[i] = m.Instance
	}
	return out
}

// Job is a purge job that finds this fleet: its DNS name at its resolver.
// The caller adds URLs, token and the rest.
func (f *Fleet) Job() purge.Job {
	return purge.Job{DNSName: f.Name, Record: f.Record, Port: f.Port, Resolver: f.Resolver}
}

// Args are the cdnpurge flags that find this fleet.
func (f *Fleet) Args() []string {
	return []string{"--dns-name", f.Name, "--record", string(f.Record), "--port", strconv.Itoa(f.Port), "--resolver", f.Resolver}
}

// Stop stops instance i (0-based); its address stays listed in DNS, as a
// crashed machine's would until the platform notices.
func (f *Fleet) Stop(i int) error {
	m := f.Members[i]
	if m.process == nil {
		return fmt.Errorf("fleet: instance %s was not started here and cannot be stopped", m.Instance)
	}
	return m.process.Stop()
}

// Close stops every process, removes namespaces and the fleet's directory,
// and stops the DNS server and the origin. It is safe to call more than once.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		f.stopMembers()
		if f.net != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			errs = append(errs, f.net.close(ctx))
			cancel()
		}
		if f.Origin != nil {
			errs = append(errs, f.Origin.Close())
		}
		if f.dns != nil {
			errs = append(errs, f.dns.Close())
		}
		if f.dir != "" {
			errs = append(errs, os.RemoveAll(f.dir))
		}
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

// describe is one line about the fleet, for logs.
func (f *Fleet) String() string {
	return fmt.Sprintf("%s fleet: %d instances on port %d, %s records of %s at %s", f.Mode, len(f.Members), f.Port,
		strings.ToUpper(string(f.Record)), f.Name, f.Resolver)
}
