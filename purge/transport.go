package purge

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"time"
)

// Defaults for Transport fields left at their zero value.
const (
	// DefaultMaxIdlePerInstance is what one run opens to an instance at
	// most (DefaultPerInstance): enough for runs one after another.
	DefaultMaxIdlePerInstance = DefaultPerInstance
	// DefaultIdleTimeout is below Varnish's default timeout_idle (5 s),
	// so that a connection taken from the pool is rarely one the instance
	// is closing at that very moment.
	DefaultIdleTimeout = 4 * time.Second
	// DefaultRememberFor is how long what an instance showed of its wire
	// is kept.
	DefaultRememberFor = 10 * time.Minute
)

// Transport keeps connections to the instances open between runs, and
// what each instance has shown of how it handles a connection, as
// net/http's Transport does for a Client. A run of a job that carries one
// (Job.Transport) starts on connections already open, as deep as the
// instance has proved it pipelines, instead of dialling every instance and
// starting each connection with one request in flight: what a program
// that sends many jobs (a broadcaster, an app that purges after each edit)
// wants. A job without one gets a private one, closed when its run ends.
//
// What the transport remembers of an instance: the pipeline depth it
// answered in full (where a connection starts), that it does not pipeline
// (one request in flight), and how many requests it takes on one
// connection (a keep-alive limit). Runs seed their own view with it and
// add what they learn; a run only ever gets more careful, and what was
// learned is forgotten RememberFor after it was last confirmed, so that a
// fixed instance gets the chance to show it.
//
// A connection goes back to the pool only when it can carry another
// request: its answers all read and nothing more waiting, the run not
// stopped, and within the instance's keep-alive limit. One taken from the
// pool is checked first (an instance may have closed it while it was
// idle); one that still turns out closed when a batch is written costs no
// attempt for the requests it could not carry, as on any kept-alive
// connection.
//
// A Transport is safe for concurrent runs. Its zero value is ready to use.
// Close it when done: idle connections hold file descriptors.
type Transport struct {
	// MaxIdlePerInstance bounds the idle connections kept per instance;
	// zero means DefaultMaxIdlePerInstance. A program that runs jobs at
	// once needs as many as those jobs open to one instance, or
	// connections are closed as runs end and dialled again as the next
	// ones start.
	MaxIdlePerInstance int
	// IdleTimeout is how long an idle connection is kept; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RememberFor is how long what an instance showed of its wire (the
	// depth it pipelines, that it does not, its keep-alive limit) is kept
	// after it was last seen; zero means DefaultRememberFor.
	RememberFor time.Duration

	mu     sync.Mutex
	hosts  map[hostKey]*hostState
	timer  *time.Timer // sweeps what expired; nil when nothing is held
	due    time.Time   // when timer fires
	closed bool
	// draining: connections given back are closed (see drain).
	draining bool
	// spare holds per read buffer size a sync.Pool of workers' conns
	// (their buffers) that finished runs gave back.
	spare sync.Map
	// fds is the open-file budget, counted at fdsAt.
	fds   fdBudget
	fdsAt time.Time
}

// hostKey is an instance, as the transport knows it: the address its
// connections go to, or in edge mode its machine.
type hostKey struct {
	addr, machine string
}

func keyOf(in Instance) hostKey {
	if in.MachineID != "" {
		return hostKey{machine: in.MachineID}
	}
	return hostKey{addr: in.addr()}
}

// tlsKey is what a TLS connection was checked against: a connection made
// with checks skipped, or against other roots, is never given to a run
// that asks for other checks.
type tlsKey struct {
	on, insecure bool
	roots        *x509.CertPool
}

func tlsKeyOf(c *tls.Config) tlsKey {
	if c == nil {
		return tlsKey{}
	}
	return tlsKey{on: true, insecure: c.InsecureSkipVerify, roots: c.RootCAs}
}

// hostState is what the transport holds for one instance.
type hostState struct {
	idle []*pconn // oldest first
	wire learned
	seen time.Time // when a run last used or taught it
}

// learned is what an instance has shown of its wire, across runs.
type learned struct {
	oneAtATime bool // it does not pipeline
	limit      int  // requests per connection; 0: none seen
	proven     int  // the deepest batch it answered in full
	// careful is when oneAtATime or limit was last learned.
	careful time.Time
}

// pconn is one open connection, with what it has carried: the part of a
// connection that outlives a run.
type pconn struct {
	nc    net.Conn
	tcp   *net.TCPConn // nil for TLS
	host  hostKey
	route route
	tls   tlsKey
	read  int64 // bytes read from the instance
	// What it has done, for the instance's keep-alive limit and the
	// depth of its next batch.
	served, carried, window int
	lastAnswer              time.Time
	idleSince               time.Time
}

func (t *Transport) maxIdle() int {
	if t.MaxIdlePerInstance > 0 {
		return t.MaxIdlePerInstance
	}
	return DefaultMaxIdlePerInstance
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (t *Transport) rememberFor() time.Duration {
	if t.RememberFor > 0 {
		return t.RememberFor
	}
	return DefaultRememberFor
}

// host returns the state of k, creating it. t.mu is held.
func (t *Transport) host(k hostKey, now time.Time) *hostState {
	h := t.hosts[k]
	if h == nil {
		if t.hosts == nil {
			t.hosts = map[hostKey]*hostState{}
		}
		h = &hostState{}
		t.hosts[k] = h
		t.arm(now.Add(t.rememberFor()))
	}
	h.seen = now
	return h
}

// get takes the newest idle connection to k on route r made with TLS
// settings tk, or nil.
func (t *Transport) get(k hostKey, r route, tk tlsKey) *pconn {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[k]
	if h == nil {
		return nil
	}
	h.seen = time.Now()
	for i := len(h.idle) - 1; i >= 0; i-- {
		if pc := h.idle[i]; pc.route == r && pc.tls == tk {
			h.idle = slices.Delete(h.idle, i, i+1)
			return pc
		}
	}
	return nil
}

// put keeps pc for a later batch or run. A closed transport closes it, and
// a full pool its oldest connection.
func (t *Transport) put(pc *pconn) {
	now := time.Now()
	pc.idleSince = now
	t.mu.Lock()
	if t.closed || t.draining {
		t.mu.Unlock()
		_ = pc.nc.Close()
		return
	}
	h := t.host(pc.host, now)
	h.idle = append(h.idle, pc)
	var evict *pconn
	if len(h.idle) > t.maxIdle() {
		evict = h.idle[0]
		h.idle = slices.Delete(h.idle, 0, 1)
	}
	t.arm(now.Add(t.idleTimeout()))
	t.mu.Unlock()
	if evict != nil {
		_ = evict.nc.Close()
	}
}

// drain keeps no more connections: the idle ones may still be taken, and
// each given back is closed by the worker that gives it back. A run's own
// transport drains for its last step, so that its workers close their
// connections as each ends, at once, instead of Close closing them one
// after another when the run is over (1,000 instances: 18 ms).
func (t *Transport) drain() {
	t.mu.Lock()
	t.draining = true
	t.mu.Unlock()
}

// seed is where a run starts with instance in, for a pass of the given
// depth: the pass's own, or one at a time when the instance does not
// pipeline, with what it has proved and its keep-alive limit.
func (t *Transport) seed(in Instance, depth int) wireState {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return wireState{depth: depth}
	}
	h := t.host(keyOf(in), now)
	if !h.wire.careful.IsZero() && now.Sub(h.wire.careful) > t.rememberFor() {
		h.wire = learned{} // not confirmed for long: learned anew
	}
	w := wireState{depth: depth, limit: h.wire.limit, proven: min(h.wire.proven, depth)}
	if h.wire.oneAtATime {
		w.depth, w.proven = 1, min(w.proven, 1)
	}
	return w
}

// learn records what a run learned of instance k: it does not pipeline,
// or it takes at most limit requests on one connection.
func (t *Transport) learn(k hostKey, oneAtATime bool, limit int) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	h := t.host(k, now)
	if oneAtATime {
		h.wire.oneAtATime, h.wire.proven = true, 1
	}
	if limit > 0 && (h.wire.limit == 0 || limit < h.wire.limit) {
		h.wire.limit = limit
	}
	h.wire.careful = now
}

// answered records that instance k answered a batch of n in full.
func (t *Transport) answered(k hostKey, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.hosts[k]; h != nil && !t.closed && n > h.wire.proven && !(h.wire.oneAtATime && n > 1) {
		h.wire.proven = n
	}
}

// arm makes the sweeper run by at. t.mu is held.
func (t *Transport) arm(at time.Time) {
	switch {
	case t.timer == nil:
		t.due = at
		t.timer = time.AfterFunc(time.Until(at), t.sweep)
	case at.Before(t.due):
		t.due = at
		t.timer.Reset(time.Until(at))
	}
}

// sweep closes the connections idle for longer than IdleTimeout and
// forgets the instances no run used for RememberFor, then waits for the
// next to expire.
func (t *Transport) sweep() {
	now := time.Now()
	var old []*pconn
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	next := time.Time{}
	later := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	idleTimeout, remember := t.idleTimeout(), t.rememberFor()
	for k, h := range t.hosts {
		keep := h.idle[:0]
		for _, pc := range h.idle {
			if now.Sub(pc.idleSince) >= idleTimeout {
				old = append(old, pc)
				continue
			}
			keep = append(keep, pc)
			later(pc.idleSince.Add(idleTimeout))
		}
		clear(h.idle[len(keep):])
		h.idle = keep
		if len(h.idle) == 0 && now.Sub(h.seen) >= remember {
			delete(t.hosts, k)
			continue
		}
		later(h.seen.Add(remember))
	}
	t.timer = nil
	if !next.IsZero() {
		t.arm(next)
	}
	t.mu.Unlock()
	for _, pc := range old {
		_ = pc.nc.Close()
	}
}

// CloseIdleConnections closes the connections that no run is using. It
// keeps what the instances have shown of their wire.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*pconn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	t.mu.Unlock()
	for _, pc := range idle {
		_ = pc.nc.Close()
	}
}

// Forget closes the idle connections to an instance and forgets what it
// showed of its wire: for an instance that left the fleet (a machine that
// comes back at its address is another one).
func (t *Transport) Forget(in Instance) {
	t.mu.Lock()
	h := t.hosts[keyOf(in)]
	delete(t.hosts, keyOf(in))
	t.mu.Unlock()
	if h != nil {
		for _, pc := range h.idle {
			_ = pc.nc.Close()
		}
	}
}

// Close closes the idle connections and keeps no more: a connection a run
// still uses is closed when that run is done with it. Runs may still use
// the transport after Close, each with connections of its own. Close
// always returns nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	hosts := t.hosts
	t.hosts = nil
	t.mu.Unlock()
	for _, h := range hosts {
		for _, pc := range h.idle {
			_ = pc.nc.Close()
		}
	}
	return nil
}

// spares are the conns finished runs gave back with a read buffer of
// size bytes.
func (t *Transport) spares(size int) *sync.Pool {
	if p, ok := t.spare.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := t.spare.LoadOrStore(size, &sync.Pool{})
	return p.(*sync.Pool)
}

// budget is how many connections the open-file limit leaves a run. It is
// counted at most once a second for the runs that share the transport:
// counting the open files reads /proc (about 0.2 ms with 300 open), and
// runs at once each see the same files open anyway.
func (t *Transport) budget() fdBudget {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); t.fdsAt.IsZero() || now.Sub(t.fdsAt) >= time.Second {
		t.fds, t.fdsAt = connectionBudget(), now
	}
	return t.fds
}
