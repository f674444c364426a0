// Package dnsserver is a small authoritative DNS server (miekg/dns) for
// tests and the local demo fleet: it answers A, AAAA, SRV and CNAME records
// from memory over UDP and TCP on one loopback port, truncates UDP answers
// that do not fit the client's buffer as a real server does, and can be told
// to fail (SERVFAIL, REFUSED) or to answer slowly.
package dnsserver

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server serves the records it holds. The zero value is not usable; call Start.
type Server struct {
	// Addr is HOST:PORT, the same port for UDP and TCP.
	Addr string

	udp, tcp *dns.Server

	mu      sync.RWMutex
	records map[string][]dns.RR // by lower-case FQDN
	rcodes  map[string]int
	delay   time.Duration
	noChase bool
	noEDNS  bool
	noTrunc bool
	byName  map[string]int

	udpQueries, tcpQueries atomic.Int64
}

// Start listens on host (e.g. "127.0.0.1" or "::1") on a port the kernel
// picks, free for both UDP and TCP, and serves until Close.
func Start(host string) (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}, rcodes: map[string]int{}, byName: map[string]int{}}
	var lastErr error
	for try := 0; try < 20; try++ {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("dns server: listen udp on %s: %w", host, err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil { // TCP port taken by someone else: pick another
			pc.Close()
			lastErr = err
			continue
		}
		s.Addr = net.JoinHostPort(host, fmt.Sprint(port))
		s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
		s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)}
		udpUp, tcpUp := make(chan struct{}), make(chan struct{})
		s.udp.NotifyStartedFunc = func() { close(udpUp) }
		s.tcp.NotifyStartedFunc = func() { close(tcpUp) }
		go func() { _ = s.udp.ActivateAndServe() }()
		go func() { _ = s.tcp.ActivateAndServe() }()
		<-udpUp
		<-tcpUp
		return s, nil
	}
	return nil, fmt.Errorf("dns server: no port free for both UDP and TCP on %s: %w", host, lastErr)
}

// Close stops both listeners.
func (s *Server) Close() error {
	err1 := s.udp.Shutdown()
	err2 := s.tcp.Shutdown()
	if err1 != nil {
		return err1
	}
	return err2
}

// Add adds records in zone-file syntax, e.g. "cdn.internal. 60 IN AAAA fdaa::3".
func (s *Server) Add(records ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			return fmt.Errorf("dns server: record %q: %w", r, err)
		}
		if rr == nil {
			continue
		}
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
	return nil
}

// Reset removes every record and failure.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = map[string][]dns.RR{}
	s.rcodes = map[string]int{}
	s.byName = map[string]int{}
}

// SetRcode makes every query for name answer with rcode (dns.RcodeServerFailure, ...).
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcodes[strings.ToLower(dns.Fqdn(name))] = rcode
}

// SetDelay makes every answer wait d.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetNoChase stops the server from adding a CNAME's target records to the
// answer, and SRV targets' addresses to the additional section, as an
// authoritative server for another zone would.
func (s *Server) SetNoChase(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noChase = v
}

// SetNoEDNS makes the server answer FORMERR to any query that carries
// EDNS0, as servers that predate it do.
func (s *Server) SetNoEDNS(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noEDNS = v
}

// SetNoTruncate makes the server send UDP answers whole, however large,
// instead of truncating them to the client's buffer size.
func (s *Server) SetNoTruncate(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noTrunc = v
}

// QueriesFor returns how many queries asked about name (any type).
func (s *Server) QueriesFor(name string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[strings.ToLower(dns.Fqdn(name))]
}

// Queries returns how many queries came over UDP and over TCP.
func (s *Server) Queries() (udp, tcp int64) {
	return s.udpQueries.Load(), s.tcpQueries.Load()
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)
	if isTCP {
		s.tcpQueries.Add(1)
	} else {
		s.udpQueries.Add(1)
	}
	s.mu.Lock()
	if len(req.Question) == 1 {
		s.byName[strings.ToLower(req.Question[0].Name)]++
	}
	delay, noTrunc := s.delay, s.noTrunc
	var m *dns.Msg
	if s.noEDNS && req.IsEdns0() != nil {
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
	} else {
		m = s.answer(req)
	}
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if !isTCP && !noTrunc {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func (s *Server) answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.Compress = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if rc, ok := s.rcodes[name]; ok {
		m.Rcode = rc
		return m
	}
	if _, ok := s.records[name]; !ok {
		m.Rcode = dns.RcodeNameError
		return m
	}
	for hop := 0; hop < 10; hop++ {
		var cname *dns.CNAME
		for _, rr := range s.records[name] {
			if c, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				cname = c
			}
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if cname == nil {
			break
		}
		m.Answer = append(m.Answer, cname)
		if s.noChase {
			break
		}
		name = strings.ToLower(cname.Target)
	}
	if q.Qtype == dns.TypeSRV && !s.noChase {
		for _, rr := range m.Answer {
			if srv, ok := rr.(*dns.SRV); ok {
				for _, a := range s.records[strings.ToLower(srv.Target)] {
					if t := a.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
						m.Extra = append(m.Extra, a)
					}
				}
			}
		}
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	return m
}
