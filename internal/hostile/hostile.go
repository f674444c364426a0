// Package hostile runs HTTP/1.1 instances that misbehave on purpose, for
// tests that compare what a client reports with what really happened.
//
// An Instance is a raw TCP listener on a loopback port the kernel chooses.
// Its behaviour is a Script, run once per connection: it reads requests
// (each one recorded as it is read: method, target, headers, the
// connection and its place on it) and writes whatever bytes it likes, in
// any order, or nothing at all. The record is what the instance received,
// so a test can hold a report's claims ("sent 2 times", "not sent") to it.
//
//	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
//		if r.Seq == 0 {
//			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
//			return
//		}
//		c.Hold() // answer the first request of a connection, then stay silent
//	}))
//	... run the client against in.Addr ...
//	in.Received("/a") // how often /a arrived
package hostile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request as the instance read it.
type Request struct {
	Conn   int // the connection it came on, numbered from 0 in accept order
	Seq    int // its place on that connection, from 0
	Method string
	Target string // the request target as sent
	Host   string
	Header http.Header
}

// Instance is a running hostile instance.
type Instance struct {
	Addr string // HOST:PORT

	l      net.Listener
	mu     sync.Mutex
	reqs   []Request
	conns  []*Conn
	quit   chan struct{}
	wg     sync.WaitGroup
	script Script
}

// Script is an instance's behaviour on one connection. It returns when it
// is done with the connection, which is then closed.
type Script func(c *Conn)

// Conn is one connection, as a script sees it.
type Conn struct {
	N int // its number, from 0

	in     *Instance
	nc     net.Conn
	br     *bufio.Reader
	seq    int
	closed chan struct{} // closed when the client has closed its side
	eofMu  sync.Mutex
	eof    bool // the client closed its side (or the script stopped reading)
	ended  bool // the script ended the connection
}

// Start starts an instance on 127.0.0.1 that runs script on every
// connection. It is stopped in t.Cleanup, its connections closed.
func Start(t testing.TB, script Script) *Instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{Addr: l.Addr().String(), l: l, quit: make(chan struct{}), script: script}
	in.wg.Add(1)
	go in.accept()
	t.Cleanup(in.Close)
	return in
}

func (in *Instance) accept() {
	defer in.wg.Done()
	for {
		nc, err := in.l.Accept()
		if err != nil {
			return
		}
		in.mu.Lock()
		c := &Conn{N: len(in.conns), in: in, nc: nc, br: bufio.NewReader(nc), closed: make(chan struct{})}
		in.conns = append(in.conns, c)
		in.mu.Unlock()
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			defer nc.Close()
			in.script(c)
		}()
	}
}

// Close stops the instance and closes every connection. It is safe to call
// more than once.
func (in *Instance) Close() {
	select {
	case <-in.quit:
		return
	default:
	}
	close(in.quit)
	_ = in.l.Close()
	in.mu.Lock()
	for _, c := range in.conns {
		_ = c.nc.Close()
	}
	in.mu.Unlock()
	in.wg.Wait()
}

// Requests returns every request received so far, in the order read.
func (in *Instance) Requests() []Request {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Request(nil), in.reqs...)
}

// Received counts the requests received for target.
func (in *Instance) Received(target string) int {
	n := 0
	for _, r := range in.Requests() {
		if r.Target == target {
			n++
		}
	}
	return n
}

// ByTarget counts the requests received per target.
func (in *Instance) ByTarget() map[string]int {
	out := map[string]int{}
	for _, r := range in.Requests() {
		out[r.Target]++
	}
	return out
}

// Conns is how many connections the instance accepted.
func (in *Instance) Conns() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.conns)
}

// ErrClosed is what ReadRequest returns once the client closed its side
// (or the instance stops).
var ErrClosed = errors.New("hostile: connection closed")

// ReadRequest reads the next request's head (a body, when it declares a
// length, is read and dropped) and records it. The request line is taken
// as it comes: a target Go's parser would refuse ("/%zz") is recorded as
// sent.
func (c *Conn) ReadRequest() (*Request, error) {
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		c.markClosed()
		return nil, ErrClosed
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !strings.HasPrefix(proto, "HTTP/1.") {
		return nil, fmt.Errorf("hostile: not a request line: %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		c.markClosed()
		return nil, ErrClosed
	}
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n > 0 {
		_, _ = io.CopyN(io.Discard, c.br, n)
	}
	r := Request{Conn: c.N, Seq: c.seq, Method: method, Target: target, Host: h.Get("Host"), Header: http.Header(h)}
	c.seq++
	c.in.mu.Lock()
	c.in.reqs = append(c.in.reqs, r)
	c.in.mu.Unlock()
	return &r, nil
}

func (c *Conn) markClosed() {
	c.eofMu.Lock()
	defer c.eofMu.Unlock()
	if !c.eof {
		c.eof = true
		close(c.closed)
	}
}

// Write writes raw bytes; errors (the client went away) are ignored, as a
// careless server ignores them.
func (c *Conn) Write(s string) { _, _ = c.nc.Write([]byte(s)) }

// Answer writes a complete answer: status line, the given header lines
// ("Name: value"), Content-Length and body.
func (c *Conn) Answer(status int, body string, header ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	c.Write(b.String())
}

// Hold keeps the connection open without answering, reading (and
// recording) whatever else the client sends, until the client closes it or
// the instance stops.
func (c *Conn) Hold() {
	for {
		if _, err := c.ReadRequest(); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			// Not a request: drain the rest silently.
			_, _ = io.Copy(io.Discard, c.br)
			c.markClosed()
			return
		}
	}
}

// Wait blocks until the client closes the connection (or d passes, or the
// instance stops) and says whether the client closed it. The script must
// not read meanwhile.
func (c *Conn) Wait(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, c.br)
		c.markClosed()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	case <-c.in.quit:
	}
	_ = c.nc.Close()
	<-done
	return false
}

// ClientClosed says whether the client has closed its side of the
// connection (as far as the script has read).
func (c *Conn) ClientClosed() bool {
	c.eofMu.Lock()
	defer c.eofMu.Unlock()
	return c.eof
}

// Each is a script that reads requests one at a time and calls answer for
// each, until the client closes the connection or answer ends it (End,
// Hold or Wait).
func Each(answer func(c *Conn, r *Request)) Script {
	return func(c *Conn) {
		for !c.done() {
			r, err := c.ReadRequest()
			if err != nil {
				return
			}
			answer(c, r)
		}
	}
}

// End ends the connection from the instance's side (the client sees it
// closed); Each stops.
func (c *Conn) End() {
	c.markEnded()
	_ = c.nc.Close()
}

func (c *Conn) markEnded() {
	c.eofMu.Lock()
	defer c.eofMu.Unlock()
	c.ended = true
}

func (c *Conn) done() bool {
	c.eofMu.Lock()
	defer c.eofMu.Unlock()
	return c.ended || c.eof
}

// Get returns the value of header name in r.
func (r *Request) Get(name string) string {
	return r.Header.Get(textproto.CanonicalMIMEHeaderKey(name))
}

// ShowsRun says whether text shows 8 consecutive characters of secret
// (letters compared without case), and which: the tests' own statement of
// the rule that no output may show part of a token, kept apart from the
// code under test (internal/secret).
func ShowsRun(text, secret string) (string, bool) {
	lt := strings.ToLower(text)
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(lt, strings.ToLower(secret[i:i+8])) {
			return secret[i : i+8], true
		}
	}
	return "", false
}
