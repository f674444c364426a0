package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
)

// A local stand-in for Fly.io in front of a fleet: a Machines API that
// lists one machine per member (and, if asked, machines in other states
// with nothing behind them), and an edge proxy that routes each request to
// the member whose machine id is in Fly-Force-Instance-Id, as Fly's proxy
// does. Everything listens on 127.0.0.1; the edge speaks HTTP/1.1 (and
// https with a self-signed certificate when FlyOptions.TLSHost is set).
//
// What the edge answers when it cannot route is not documented by Fly.io:
// the docs only say that fly-force-instance-id has "no fallback if the
// Machine is ultimately unavailable". The statuses are chosen here, the
// wording follows the proxy's own messages: 503 with "no known healthy
// instances found for route" (error code PR01 in Fly's error-code list)
// for a machine that is unknown or not started, and 502 with "could not
// send HTTP request to instance: connection error: ..." (the proxy's log
// message) for a started machine that does not accept connections.

// DefaultFlyApp is the app name a stand-in uses when none is given.
const DefaultFlyApp = "cdnpurge-fleet"

// FlyRegions returns the regions members are placed in, in turn.
func FlyRegions() []string {
	return []string{"iad", "sjc", "ams", "fra", "lhr", "nrt", "syd", "gru", "sin", "cdg", "ord", "dfw", "sea", "yyz", "waw", "arn", "mad", "jnb", "bom", "hkg"}
}

// FlyOptions describe a Fly.io stand-in.
type FlyOptions struct {
	// App is the app's name; empty means DefaultFlyApp. The API answers
	// 404 for any other app.
	App string
	// Token is the API token the Machines API accepts (as "Bearer TOKEN",
	// or "FlyV1 ..." for a macaroon token); empty means a random one.
	Token string
	// Regions are the members' regions, in member order; members past its
	// end take FlyRegions in turn.
	Regions []string
	// Extra are machines the API lists besides the members', with nothing
	// behind them: give each a State other than started (empty means
	// stopped). Empty IDs, names and regions are generated.
	Extra []FlyMachine
	// TLSHost, when set, makes the edge also serve https (FlyEdge.TLSAddr)
	// with a self-signed certificate for this host name and 127.0.0.1,
	// trusted by FlyEdge.RootCAs.
	TLSHost string
	// AfterList, when set, is called each time the API has listed the
	// machines, before the list is sent: what it does to a machine (Stop,
	// SetState) happens after the client saw it started, as a machine
	// dying mid-run.
	AfterList func()
}

// FlyMachine is one machine as the Machines API lists it.
type FlyMachine struct {
	ID        string `json:"id"` // 14 hex digits, as Fly's
	Name      string `json:"name"`
	State     string `json:"state"`
	Region    string `json:"region"`
	PrivateIP string `json:"private_ip"`
	// Member is the fleet member behind the machine, nil for an extra one.
	Member *Member `json:"-"`
}

// FlyEdge is a running stand-in. Close stops it (not the fleet).
type FlyEdge struct {
	App   string
	Token string
	// API is the Machines API's base URL, http://127.0.0.1:PORT.
	API string
	// Addr is the edge's plain HTTP address, 127.0.0.1:PORT: what a job
	// connects to instead of the URL's host (purge.Fly.Connect).
	Addr string
	// TLSAddr is the edge's https address when FlyOptions.TLSHost is set;
	// RootCAs trusts its certificate.
	TLSAddr string
	RootCAs *x509.CertPool

	fleet     *Fleet
	afterList func()
	api, edge *flyServer

	mu       sync.Mutex
	machines []FlyMachine
	routes   map[string]*http.Transport // by machine id, members only
	requests map[string]int             // by Fly-Force-Instance-Id ("" without)

	closeOnce sync.Once
	closeErr  error
}

// StartFly starts a Machines API and an edge in front of the fleet. The
// fleet keeps running when the stand-in is closed.
func (f *Fleet) StartFly(o FlyOptions) (*FlyEdge, error) {
	e := &FlyEdge{App: o.App, Token: o.Token, fleet: f, afterList: o.AfterList,
		routes: map[string]*http.Transport{}, requests: map[string]int{}}
	if e.App == "" {
		e.App = DefaultFlyApp
	}
	if e.Token == "" {
		e.Token = "fly-test-" + randomHex(12)
	}
	if err := e.placeMachines(o); err != nil {
		return nil, err
	}
	var err error
	if e.api, err = startFlyServer(http.HandlerFunc(e.serveAPI), nil); err != nil {
		return nil, err
	}
	e.API = "http://" + e.api.addrs[0]
	var cert *tls.Certificate
	if o.TLSHost != "" {
		if cert, e.RootCAs, err = selfSigned(o.TLSHost); err != nil {
			return nil, errors.Join(err, e.Close())
		}
	}
	if e.edge, err = startFlyServer(http.HandlerFunc(e.serveEdge), cert); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	e.Addr = e.edge.addrs[0]
	if cert != nil {
		e.TLSAddr = e.edge.addrs[1]
	}
	return e, nil
}

func (e *FlyEdge) placeMachines(o FlyOptions) error {
	seen := map[string]bool{}
	newID := func(id string) (string, error) {
		if id == "" {
			for id == "" || seen[id] {
				id = randomHex(7)
			}
		}
		id = strings.ToLower(id)
		if seen[id] || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", fmt.Errorf("fly stand-in: machine id %q: repeated, or not one word", id)
		}
		seen[id] = true
		return id, nil
	}
	region := func(i int) string {
		if i < len(o.Regions) && o.Regions[i] != "" {
			return o.Regions[i]
		}
		regions := FlyRegions()
		return regions[i%len(regions)]
	}
	for i, m := range e.fleet.Members {
		id, err := newID("")
		if err != nil {
			return err
		}
		e.machines = append(e.machines, FlyMachine{ID: id, Name: m.Name, State: "started", Region: region(i),
			PrivateIP: fmt.Sprintf("fdaa:0:c0de:a7b:%x::2", i+1), Member: m})
		e.routes[id] = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		}
	}
	for i, m := range o.Extra {
		n := len(e.fleet.Members) + i
		var err error
		if m.ID, err = newID(m.ID); err != nil {
			return err
		}
		if m.State == "" {
			m.State = "stopped"
		}
		if m.State == "started" {
			return fmt.Errorf("fly stand-in: extra machine %s: nothing runs behind it; give a state other than started", m.ID)
		}
		if m.Name == "" {
			m.Name = fmt.Sprintf("extra-%d", i+1)
		}
		if m.Region == "" {
			m.Region = region(n)
		}
		if m.PrivateIP == "" {
			m.PrivateIP = fmt.Sprintf("fdaa:0:c0de:a7b:%x::2", n+1)
		}
		m.Member = nil
		e.machines = append(e.machines, m)
	}
	return nil
}

// Machines lists the machines as the API does now, members' first.
func (e *FlyEdge) Machines() []FlyMachine {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.machines)
}

// Machine is the machine of member i (0-based).
func (e *FlyEdge) Machine(i int) FlyMachine {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.machines[i]
}

// Requests counts the requests the edge received for a machine id (""
// counts those without Fly-Force-Instance-Id), routed or not.
func (e *FlyEdge) Requests(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests[id]
}

// Job is a purge job that finds the fleet through the stand-in: the
// app, token and API, every connection to the edge over plain HTTP. The
// caller adds URLs, the purge token and the rest.
func (e *FlyEdge) Job() purge.Job {
	return purge.Job{Fly: purge.Fly{App: e.App, Token: e.Token, API: e.API, Connect: e.Addr}, Scheme: "http"}
}

// Args are the cdnpurge flags that find the fleet through the stand-in;
// the token goes in FLY_API_TOKEN.
func (e *FlyEdge) Args() []string {
	return []string{"--fly-app", e.App, "--fly-api", e.API, "--connect", e.Addr, "--scheme", "http"}
}

// Stop stops the varnishd behind machine id. The API keeps listing the
// machine as started, as the platform does until it notices, and the edge
// answers 502 for it: the machine refuses connections.
func (e *FlyEdge) Stop(id string) error {
	e.mu.Lock()
	i := e.find(id)
	var m *Member
	var tr *http.Transport
	if i >= 0 {
		m, tr = e.machines[i].Member, e.routes[e.machines[i].ID]
	}
	e.mu.Unlock()
	if m == nil {
		return fmt.Errorf("fly stand-in: no machine %s with a fleet member behind it", id)
	}
	k := slices.Index(e.fleet.Members, m)
	if k < 0 {
		return fmt.Errorf("fly stand-in: machine %s: its member is no longer in the fleet", id)
	}
	err := e.fleet.Stop(k)
	tr.CloseIdleConnections()
	return err
}

// SetState sets the state the API lists for machine id; the edge routes
// only to started machines. A machine without a member cannot be started.
func (e *FlyEdge) SetState(id, state string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(id)
	switch {
	case i < 0:
		return fmt.Errorf("fly stand-in: no machine %s", id)
	case state == "started" && e.machines[i].Member == nil:
		return fmt.Errorf("fly stand-in: machine %s has nothing behind it and cannot be started", id)
	}
	e.machines[i].State = state
	return nil
}

// find is the index of machine id, or -1; e.mu is held.
func (e *FlyEdge) find(id string) int {
	id = strings.ToLower(strings.TrimSpace(id))
	return slices.IndexFunc(e.machines, func(m FlyMachine) bool { return m.ID == id })
}

// Close stops the API and the edge (the fleet keeps running). It is safe
// to call more than once.
func (e *FlyEdge) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, s := range []*flyServer{e.edge, e.api} {
			if s != nil {
				errs = append(errs, s.close())
			}
		}
		e.mu.Lock()
		for _, tr := range e.routes {
			tr.CloseIdleConnections()
		}
		e.mu.Unlock()
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// serveAPI is GET /v1/apps/APP/machines.
func (e *FlyEdge) serveAPI(w http.ResponseWriter, r *http.Request) {
	app, ok := strings.CutPrefix(r.URL.Path, "/v1/apps/")
	app, ok2 := strings.CutSuffix(app, "/machines")
	switch {
	case !ok || !ok2 || app == "" || strings.Contains(app, "/"):
		apiError(w, http.StatusNotFound, "not found")
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		apiError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	case !e.authorized(r.Header.Get("Authorization")):
		apiError(w, http.StatusUnauthorized, "unauthorized")
		return
	case app != e.App:
		apiError(w, http.StatusNotFound, "app not found")
		return
	}
	body, err := json.Marshal(e.Machines())
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if e.afterList != nil {
		e.afterList()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

// authorized accepts the token as "Bearer TOKEN" or, for a macaroon token
// ("FlyV1 fm2_..."), as "FlyV1 ...", the scheme written once.
func (e *FlyEdge) authorized(h string) bool {
	strip := func(s string) string {
		for _, scheme := range []string{"Bearer ", "FlyV1 "} {
			if len(s) > len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
				return s[len(scheme):]
			}
		}
		return s
	}
	got, want := strip(h), strip(e.Token)
	return got != h && got == want
}

func apiError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// serveEdge routes a request as Fly's proxy does: to the machine named in
// Fly-Force-Instance-Id, with no fallback, or without it to the nearest
// started machine (here: the first).
func (e *FlyEdge) serveEdge(w http.ResponseWriter, r *http.Request) {
	// The id is matched exactly, as the API wrote it: a client that
	// changes it (case, say) reaches nothing.
	id := strings.TrimSpace(r.Header.Get("Fly-Force-Instance-Id"))
	e.mu.Lock()
	e.requests[id]++
	var i int
	if id != "" {
		i = slices.IndexFunc(e.machines, func(m FlyMachine) bool { return m.ID == id })
	} else {
		i = slices.IndexFunc(e.machines, func(m FlyMachine) bool { return m.State == "started" && m.Member != nil })
	}
	var m FlyMachine
	if i >= 0 {
		m = e.machines[i]
	}
	tr := e.routes[m.ID]
	e.mu.Unlock()

	w.Header().Set("Fly-Request-Id", randomHex(13)+"-iad")
	w.Header().Set("Via", "1.1 fly.io")
	switch {
	case i < 0 && id == "":
		edgeError(w, http.StatusServiceUnavailable, "no known healthy instances found for route: app %s has no started machine", e.App)
		return
	case i < 0:
		edgeError(w, http.StatusServiceUnavailable, "no known healthy instances found for route: app %s has no machine %s", e.App, id)
		return
	case m.State != "started" || m.Member == nil:
		edgeError(w, http.StatusServiceUnavailable, "no known healthy instances found for route: machine %s is %s", m.ID, m.State)
		return
	}
	target := m.Member.Instance.String()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
			pr.Out.Host = pr.In.Host // the cache's key: the URL's own host
			pr.SetXForwarded()
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client is gone
			}
			edgeError(w, http.StatusBadGateway, "could not send HTTP request to instance %s: connection error: %s", m.ID, connError(err))
		},
	}
	rp.ServeHTTP(w, r)
}

func edgeError(w http.ResponseWriter, status int, format string, a ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, format+"\n", a...)
}

// connError words a connection error as the proxy does.
func connError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the answer"
	}
	return err.Error()
}

// flyServer is an HTTP server on 127.0.0.1 (plain, and with TLS when a
// certificate is given) whose close waits for every handler.
type flyServer struct {
	srv      *http.Server
	addrs    []string
	serving  sync.WaitGroup
	handlers sync.WaitGroup
}

func startFlyServer(h http.Handler, cert *tls.Certificate) (*flyServer, error) {
	s := &flyServer{}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.handlers.Add(1)
			defer s.handlers.Done()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	var ls []net.Listener
	for range 1 + btoi(cert != nil) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
		s.addrs = append(s.addrs, l.Addr().String())
	}
	if cert != nil {
		ls[1] = tls.NewListener(ls[1], &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}})
	}
	for _, l := range ls {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			_ = s.srv.Serve(l)
		}()
	}
	return s, nil
}

// close closes the listeners and every connection (which cancels the
// requests in flight), then waits for the handlers.
func (s *flyServer) close() error {
	err := s.srv.Close()
	s.serving.Wait()
	s.handlers.Wait()
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// selfSigned makes a certificate for host and 127.0.0.1, and a pool that
// trusts it.
func selfSigned(host string) (*tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"cdnpurge fly stand-in"}},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
