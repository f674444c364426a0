package purge

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"
)

// route is where a connection goes: the address dialled and the TLS server
// name (empty for plain http).
type route struct {
	addr, serverName string
}

// conn is an engine worker's hold on one connection at a time, to one
// instance, so the connections a run has open never exceed its workers.
// The connection comes from the run's Transport (kept alive from an
// earlier batch or run) or is dialled, and goes back to the transport when
// the worker is done with it, if it can carry more (see release).
type conn struct {
	tr      *Transport
	tls     *tls.Config // nil for http
	tlsKey  tlsKey
	timeout time.Duration
	readBuf int // the read buffer's size

	pc    *pconn   // the connection in hand; nil when none
	nc    net.Conn // pc's; nil when none
	tcp   *net.TCPConn
	route route
	br    *bufio.Reader
	wbuf  []byte
	resp  response    // the answer being read
	stop  func() bool // unregisters the context's AfterFunc; nil once called
	// fired: the AfterFunc ran (or may still run), so this conn is not
	// given to another run.
	fired bool
	// deadlineSet is when the connection's deadline was last moved;
	// stopAt, once the run is stopped, the deadline that then holds.
	deadlineSet time.Time
	stopAt      atomic.Int64
	// verdicts is the worker's buffer for a batch's verdicts; ends, for
	// where each request of a batch ends in wbuf.
	verdicts []verdict
	ends     []int

	// What this connection has done, for the instance it goes to (kept
	// with it in the transport between runs).
	inst       *instState
	served     int       // answers read
	carried    int       // requests written
	window     int       // the next batch's size (before the instance's limits)
	lastAnswer time.Time // when the last answer was read
}

// newConn returns a worker's conn, with the buffers of one that an earlier
// run of tr gave back when there is one.
func newConn(tr *Transport, tlsConf *tls.Config, timeout time.Duration, readBuf int) *conn {
	c, _ := tr.spares(readBuf).Get().(*conn)
	if c == nil {
		c = &conn{}
	}
	*c = conn{tr: tr, tls: tlsConf, tlsKey: tlsKeyOf(tlsConf), timeout: timeout, readBuf: readBuf,
		br: c.br, wbuf: c.wbuf[:0], resp: c.resp, verdicts: c.verdicts[:0], ends: c.ends[:0]}
	return c
}

// countingConn counts the bytes read from the wire.
type countingConn struct {
	net.Conn
	n *int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	*c.n += int64(n)
	return n, err
}

// use makes the connection ready for a batch of instance t to r. It keeps
// the one in hand when it goes there and has nothing unread (a byte the
// last answer did not account for means the answers would no longer pair
// with the requests); otherwise it takes an idle one from the transport,
// checked the same way (the instance may have closed it meanwhile), or
// dials. It says whether the connection was kept alive from an earlier
// batch.
func (c *conn) use(ctx context.Context, t *instState, r route) (kept bool, err error) {
	if c.nc != nil && c.route != r {
		c.release()
	}
	if c.nc != nil && c.unread() != 0 {
		c.close()
	}
	if c.nc != nil {
		return true, nil
	}
	for pc := c.tr.get(t.host, r, c.tlsKey); pc != nil; pc = c.tr.get(t.host, r, c.tlsKey) {
		c.attach(ctx, pc)
		// Closed or written to while idle, or it has carried what the
		// instance (as now known) takes on one connection: not used.
		if w := t.wireNow(); c.unread() == 0 && (w.limit == 0 || pc.carried < w.limit) {
			c.inst, c.served, c.carried, c.window, c.lastAnswer = t, pc.served, pc.carried, pc.window, pc.lastAnswer
			return true, nil
		}
		c.close()
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	d.KeepAlive = -1
	raw, err := d.DialContext(dctx, "tcp", r.addr)
	if err != nil {
		return false, err
	}
	pc := &pconn{host: t.host, route: r, tls: c.tlsKey}
	pc.tcp, _ = raw.(*net.TCPConn)
	var nc net.Conn = countingConn{raw, &pc.read}
	if c.tls != nil {
		cfg := c.tls.Clone()
		cfg.ServerName = r.serverName
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = raw.Close()
			return false, err
		}
		nc = tc
		pc.tcp = nil // TLS records (session tickets) may wait unread: not a sign of a bad answer
	}
	pc.nc = nc
	c.attach(ctx, pc)
	return false, nil
}

// attach takes pc in hand for a run stopped by ctx.
func (c *conn) attach(ctx context.Context, pc *pconn) {
	c.pc, c.nc, c.tcp, c.route, c.deadlineSet = pc, pc.nc, pc.tcp, pc.route, time.Time{}
	if c.br == nil {
		c.br = bufio.NewReaderSize(pc.nc, c.readBuf)
	} else {
		c.br.Reset(pc.nc)
	}
	c.stopAt.Store(0)
	nc := pc.nc
	c.stop = context.AfterFunc(ctx, func() {
		// Stopped: answers already on their way are still read, for a
		// moment, so that the report says what the instance did.
		at := time.Now().Add(stopGrace)
		c.stopAt.Store(at.UnixNano())
		_ = nc.SetDeadline(at)
	})
}

// stopGrace is how long answers are still read once the run is stopped.
const stopGrace = 100 * time.Millisecond

// unread says whether bytes are waiting that no answer accounted for (1),
// or the instance has closed the connection (-1), or neither (0).
func (c *conn) unread() int {
	if c.br.Buffered() > 0 {
		return 1
	}
	if c.tcp == nil {
		return 0
	}
	return peek(c.tcp)
}

func (c *conn) close() {
	if c.nc == nil {
		return
	}
	c.unhook()
	_ = c.nc.Close()
	c.pc, c.nc, c.tcp = nil, nil, nil
}

// release gives the connection in hand back to the transport, for a later
// batch or run, when it can carry another request: every answer read and
// nothing more waiting (nor a close), the run not stopped (its deadline
// would hold), and fewer requests carried than the instance takes on one
// connection. It closes it otherwise.
func (c *conn) release() {
	if c.nc == nil {
		return
	}
	if !c.unhook() { // the run was stopped
		c.close()
		return
	}
	_ = c.nc.SetDeadline(time.Time{}) // before unread: a passed deadline fails the peek
	if c.inst == nil || c.unread() != 0 {
		c.close()
		return
	}
	if w := c.inst.wireNow(); w.limit > 0 && c.carried >= w.limit {
		c.close()
		return
	}
	pc := c.pc
	pc.served, pc.carried, pc.window, pc.lastAnswer = c.served, c.carried, c.window, c.lastAnswer
	c.pc, c.nc, c.tcp = nil, nil, nil
	c.tr.put(pc)
}

// unhook unregisters the run's AfterFunc, and says whether it had not run.
func (c *conn) unhook() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	c.fired = c.fired || !ok
	return ok
}

// done ends the worker's use of the connection: it is released, and the
// conn's buffers are given back for another run's worker.
func (c *conn) done() {
	c.release()
	if c.fired {
		return // its AfterFunc may yet write to it
	}
	if c.br != nil {
		c.br.Reset(nil)
	}
	c.inst = nil
	c.tr.spares(c.readBuf).Put(c)
}

// deadline gives the next step (a write, or one answer) the attempt's time.
// Moving a deadline costs a timer update, so for the answers of a batch,
// which come fast, it is moved only once an eighth of the time has passed:
// each answer then has between 7/8 of the timeout and all of it.
func (c *conn) deadline() { c.deadlineAt(time.Now()) }

// deadlineAt is deadline when it is now.
func (c *conn) deadlineAt(now time.Time) {
	if now.Sub(c.deadlineSet) < c.timeout/8 || c.stopAt.Load() != 0 {
		return
	}
	c.deadlineSet = now
	_ = c.nc.SetDeadline(now.Add(c.timeout))
	if at := c.stopAt.Load(); at != 0 { // stopped meanwhile: the stop's deadline holds
		_ = c.nc.SetDeadline(time.Unix(0, at))
	}
}
