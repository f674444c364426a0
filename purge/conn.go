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

// conn is one connection to one instance, kept alive between batches. It
// is owned by one engine worker at a time, so the connections open never
// exceed the number of workers.
type conn struct {
	timeout time.Duration
	tls     *tls.Config // nil for http
	readBuf int         // the read buffer's size

	nc    net.Conn // nil when closed
	tcp   *net.TCPConn
	route route
	br    *bufio.Reader
	wbuf  []byte
	stop  func() bool // unregisters the context's AfterFunc
	read  int64       // bytes read from instances, over all connections
	// deadlineSet is when the connection's deadline was last moved;
	// stopAt, once the run is stopped, the deadline that then holds.
	deadlineSet time.Time
	stopAt      atomic.Int64
	// verdicts is the worker's buffer for a batch's verdicts; ends, for
	// where each request of a batch ends in wbuf.
	verdicts []verdict
	ends     []int

	// What this connection has done, for the instance it goes to.
	inst       *instState
	served     int       // answers read
	carried    int       // requests written
	window     int       // the next batch's size (before the instance's limits)
	lastAnswer time.Time // when the last answer was read
}

func newConn(tlsConf *tls.Config, timeout time.Duration, readBuf int) *conn {
	return &conn{tls: tlsConf, timeout: timeout, readBuf: readBuf}
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

// use makes the connection ready for a batch to r: it keeps the current one
// when it goes there and has nothing unread (a byte the last answer did not
// account for means the answers would no longer pair with the requests),
// and dials otherwise. It says whether the connection was kept.
func (c *conn) use(ctx context.Context, r route) (kept bool, err error) {
	if c.nc != nil && (c.route != r || c.unread() != 0) {
		c.close()
	}
	if c.nc != nil {
		return true, nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	d.KeepAlive = -1
	raw, err := d.DialContext(dctx, "tcp", r.addr)
	if err != nil {
		return false, err
	}
	c.tcp, _ = raw.(*net.TCPConn)
	var nc net.Conn = countingConn{raw, &c.read}
	if c.tls != nil {
		cfg := c.tls.Clone()
		cfg.ServerName = r.serverName
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = raw.Close()
			return false, err
		}
		nc = tc
		c.tcp = nil // TLS records (session tickets) may wait unread: not a sign of a bad answer
	}
	c.nc, c.route, c.deadlineSet = nc, r, time.Time{}
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, c.readBuf)
	} else {
		c.br.Reset(nc)
	}
	c.stopAt.Store(0)
	c.stop = context.AfterFunc(ctx, func() {
		// Stopped: answers already on their way are still read, for a
		// moment, so that the report says what the instance did.
		at := time.Now().Add(stopGrace)
		c.stopAt.Store(at.UnixNano())
		_ = nc.SetDeadline(at)
	})
	return false, nil
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
	c.stop()
	_ = c.nc.Close()
	c.nc, c.tcp = nil, nil
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
