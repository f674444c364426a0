package purge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// instanceConn sends requests to one instance over at most one connection at
// a time, kept alive between requests. It is what each engine worker owns, so
// the number of connections open is exactly bounded by the number of workers.
// Requests are written and responses parsed by net/http (Request.Write,
// ReadResponse); only the connection's life is managed here. This costs far
// less than an http.Transport per worker (no dial, read and write goroutines
// per connection), which matters when a thousand instances are purged at once.
//
// An instanceConn is used by one goroutine at a time.
type instanceConn struct {
	dialer  net.Dialer
	tls     *tls.Config // nil for http
	timeout time.Duration

	addr    string // instance host:port
	conn    net.Conn
	sni     string // server name the TLS connection was made for
	br      *bufio.Reader
	bw      *bufio.Writer
	pending bool  // a response body is still open
	read    int64 // bytes read from instances, over all connections
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

func newInstanceConn(tlsConf *tls.Config, timeout time.Duration) *instanceConn {
	// No Dialer.Timeout: each attempt's context already carries it.
	return &instanceConn{dialer: net.Dialer{KeepAlive: -1}, tls: tlsConf, timeout: timeout}
}

// target points the connection at an instance, closing one to another.
func (c *instanceConn) target(addr string) {
	if c.addr != addr {
		c.close()
		c.addr = addr
	}
}

func (c *instanceConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br, c.bw, c.sni = nil, nil, nil, ""
	}
}

func (c *instanceConn) dial(ctx context.Context, serverName string) error {
	raw, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	var conn net.Conn = countingConn{raw, &c.read}
	if c.tls != nil {
		cfg := c.tls.Clone()
		cfg.ServerName = serverName
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	c.conn, c.sni = conn, serverName
	c.br = bufio.NewReaderSize(conn, 2048)
	c.bw = bufio.NewWriterSize(conn, 1024)
	return nil
}

// RoundTrip sends req and reads the response headers; ctx bounds both (the
// request's own context is not used). The caller must close the body; the
// connection is kept for the next request only when the body was read to
// its end and neither side asked to close.
func (c *instanceConn) RoundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	if c.pending {
		return nil, errors.New("instanceConn: previous response body not closed")
	}
	serverName := ""
	if c.tls != nil {
		serverName = req.URL.Hostname()
	}
	if c.conn != nil && c.sni != serverName {
		c.close()
	}
	for try := 0; ; try++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx, serverName); err != nil {
				return nil, err
			}
		}
		resp, err := c.exchange(ctx, req)
		if err == nil {
			return resp, nil
		}
		c.close()
		// A kept-alive connection the server closed meanwhile: send again
		// on a new one, once, as net/http does.
		if reused && try == 0 && ctx.Err() == nil && isClosedConn(err) {
			continue
		}
		return nil, err
	}
}

func (c *instanceConn) exchange(ctx context.Context, req *http.Request) (*http.Response, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, ctxErr(ctx, err)
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, ctxErr(ctx, err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		stop()
		return nil, ctxErr(ctx, err)
	}
	c.pending = true
	resp.Body = &connBody{rc: resp.Body, c: c, keep: !resp.Close, stop: stop, eof: resp.Body == http.NoBody}
	return resp, nil
}

// ctxErr prefers the context's reason over the i/o error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// connBody hands the connection back when the body is closed.
type connBody struct {
	rc   io.ReadCloser
	c    *instanceConn
	keep bool
	eof  bool
	stop func() bool
	done bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.keep = false
	}
	return n, err
}

func (b *connBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.c.pending = false
	cancelled := !b.stop()
	if !b.keep || !b.eof || cancelled {
		// Closing net/http's body would read the rest of it; closing the
		// connection instead reads nothing more.
		b.c.close()
		return nil
	}
	return b.rc.Close()
}
