package purge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBackoff bounds the delay between two attempts, Retry-After included.
const maxBackoff = 10 * time.Second

// pass is one step's requests: every URL (or, in a later verify round, the
// ones still to check) to every instance.
type pass struct {
	step   Step
	method string
	// heads holds, per URL, the request line, Host and the URL's own
	// headers; common the headers shared by every request and the blank
	// line that ends them.
	heads  [][]byte
	common []byte
	// serverName and dial hold, per URL, the TLS server name (https) and,
	// in edge mode, the address to dial.
	serverName []string
	dial       []string
	read       readOpts
	depth      int
	// readBuf is a connection's read buffer: room for a pipelined batch's
	// answers in one read; small when one answer's headers are all that is
	// wanted (a GET's body is not read).
	readBuf int
	// idempotent requests may be sent again after they were written,
	// when the connection broke before their answer.
	idempotent bool
	// judge reads the answer to URL u from instance i (result k): it says
	// whether it is OK, and otherwise whether another attempt may help and
	// why not OK.
	judge func(k int, r *response, bytesRead int64) (ok, retry bool, err error)
	// todo, when set, lists per instance the URL indexes to send (a later
	// verify round); nil sends every URL.
	todo [][]int32
}

// engine runs a pass over a bounded set of workers. Each worker owns one
// connection at a time, to one instance, so the connections open never
// exceed the connection limit. A worker takes up to depth URLs of its
// instance, writes their requests in one go and reads the answers in
// order (HTTP/1.1 pipelining), keeping the connection for the next batch.
type engine struct {
	p        *plan
	ps       *pass
	rep      *Report
	tls      *tls.Config
	insts    []*instState
	maxConns int
	budget   fdBudget

	done, failed atomic.Int64
	total        int
}

// instState is one instance's share of a pass.
type instState struct {
	idx int
	in  Instance
	// hdr holds the instance's own header lines (edge routing).
	hdr  []byte
	todo []int32 // nil: every URL
	n    int     // URLs to send
	next atomic.Int64
	// fails counts connection failures in a row, with no answer between.
	fails atomic.Int32
	// dead is the reference of the error that gave the instance up.
	dead atomic.Uint32
}

// item is one URL in a worker's hands.
type item struct {
	u     int32
	first int64 // UnixNano of the first send; 0: not sent yet
	ready int64 // UnixNano before which it must not be sent again
	stale bool  // already sent again once after a kept-alive connection broke
	solo  bool  // sent alone: in a batch, its answer could not be paired
}

func (e *engine) url(t *instState, i int) int32 {
	if t.todo != nil {
		return t.todo[i]
	}
	return int32(i)
}

func (e *engine) row(t *instState, u int32) *row {
	return &e.rep.rows[e.rep.Index(int(u), t.idx)]
}

// run sends the pass and fills the report's rows.
func (e *engine) run(ctx context.Context) {
	nI := len(e.insts)
	maxN := 0
	for _, t := range e.insts {
		maxN = max(maxN, t.n)
		e.total += t.n
	}
	if e.total == 0 {
		return
	}
	perInst := max(1, min(e.p.PerInstance, (maxN+e.ps.depth-1)/e.ps.depth, e.maxConns/nI))
	lanes := make(chan *instState, nI*perInst)
	for range perInst {
		for _, t := range e.insts {
			if t.n > 0 {
				lanes <- t
			}
		}
	}
	close(lanes)
	workers, warning := e.budget.cap(min(e.maxConns, len(lanes)))
	if warning != "" && !slices.Contains(e.rep.Warnings, warning) {
		e.rep.Warnings = append(e.rep.Warnings, warning)
	}
	stopProgress := e.progress(ctx)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newConn(e.tls, e.p.Timeout, e.ps.readBuf)
			defer c.close()
			for t := range lanes {
				e.lane(ctx, c, t)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	e.finish(ctx)
}

// progress calls Job.Progress every 200 ms until stopped, and once then.
func (e *engine) progress(ctx context.Context) (stop func()) {
	if e.p.Progress == nil {
		return func() {}
	}
	start := time.Now()
	report := func() {
		e.p.Progress(Progress{Step: string(e.ps.step), Done: int(e.done.Load()), Total: e.total, Failed: int(e.failed.Load()), Elapsed: time.Since(start)})
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		report()
	}
}

// lane sends URLs of instance t over c until none is left.
func (e *engine) lane(ctx context.Context, c *conn, t *instState) {
	var queue, retry []item // queue: ready to send again; retry: waiting for backoff
	batch := make([]item, 0, e.ps.depth)
	for {
		if ref := t.dead.Load(); ref != 0 {
			e.giveUp(t, ref, queue, retry)
			return
		}
		if ctx.Err() != nil {
			return // finish() reports what is left
		}
		batch = e.fill(t, batch[:0], &queue, &retry)
		if len(batch) == 0 {
			if len(retry) == 0 {
				return
			}
			next := retry[0].ready
			for _, it := range retry {
				next = min(next, it.ready)
			}
			_ = sleepCtx(ctx, time.Until(time.Unix(0, next)))
			continue
		}
		e.send(ctx, c, t, batch, &queue, &retry)
	}
}

// fill takes up to depth items for one connection: those to send again
// first, then retries whose backoff is over, then new URLs. Every item of
// a batch goes the same route.
func (e *engine) fill(t *instState, batch []item, queue, retry *[]item) []item {
	depth := e.ps.depth
	take := func(it item) bool {
		if len(batch) > 0 && (batch[0].solo || it.solo || !e.sameRoute(batch[0].u, it.u)) {
			return false
		}
		batch = append(batch, it)
		return true
	}
	rest := (*queue)[:0]
	for _, it := range *queue {
		if len(batch) >= depth || !take(it) {
			rest = append(rest, it)
		}
	}
	*queue = rest
	now := time.Now().UnixNano()
	rest = (*retry)[:0]
	for _, it := range *retry {
		if len(batch) >= depth || it.ready > now || !take(it) {
			rest = append(rest, it)
		}
	}
	*retry = rest
	if n := depth - len(batch); n > 0 {
		start := t.next.Add(int64(n)) - int64(n)
		for i := start; i < min(start+int64(n), int64(t.n)); i++ {
			it := item{u: e.url(t, int(i))}
			if !take(it) {
				*queue = append(*queue, it)
			}
		}
	}
	return batch
}

func (e *engine) sameRoute(a, b int32) bool {
	ps := e.ps
	return ps.serverName[a] == ps.serverName[b] && (ps.dial == nil || ps.dial[a] == ps.dial[b])
}

func (e *engine) route(t *instState, u int32) route {
	r := route{addr: t.in.addr(), serverName: e.ps.serverName[u]}
	if e.ps.dial != nil {
		r.addr = e.ps.dial[u]
	}
	return r
}

// send writes a batch on one connection and reads the answers in order.
// An answer is paired with its request by position only, so any doubt
// about the stream (an answer that is not one, bytes nobody accounted
// for, a broken connection) closes the connection, and the requests not
// yet answered go again on a new one.
func (e *engine) send(ctx context.Context, c *conn, t *instState, batch []item, queue, retry *[]item) {
	kept, err := c.use(ctx, e.route(t, batch[0].u))
	if err != nil {
		// Nothing was sent: the attempt is the first request's; the others
		// wait for the next connection (or the instance is given up).
		e.connFailed(t, err)
		e.attemptFailed(ctx, t, &batch[0], err, true, retry)
		e.requeue(batch[1:], queue)
		return
	}
	now := time.Now()
	for i := range batch {
		if batch[i].first == 0 {
			batch[i].first = now.UnixNano()
		}
	}
	c.wbuf = c.wbuf[:0]
	for _, it := range batch {
		c.wbuf = append(c.wbuf, e.ps.heads[it.u]...)
		c.wbuf = append(c.wbuf, t.hdr...)
		c.wbuf = append(c.wbuf, e.ps.common...)
	}
	c.deadlineSet = time.Time{} // a new batch: a whole timeout from now
	c.deadline()
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.close()
		e.broken(ctx, t, batch, 0, kept, err, queue, retry)
		return
	}
	var r response
	verdicts := c.verdicts[:0]
	closing := false
	for k := range batch {
		before := c.read
		if err := readResponse(c.br, &e.ps.read, &r); err != nil {
			c.close()
			e.apply(ctx, t, batch[:k], verdicts, retry)
			e.broken(ctx, t, batch, k, kept || k > 0, err, queue, retry)
			return
		}
		t.fails.Store(0)
		v := verdict{status: r.status, retryAfter: r.retryAfter}
		v.ok, v.again, v.err = e.ps.judge(e.rep.Index(int(batch[k].u), t.idx), &r, c.read-before)
		verdicts = append(verdicts, v)
		if r.close {
			closing = true
			break
		}
		c.deadline()
	}
	c.verdicts = verdicts
	answered := len(verdicts)
	switch {
	case closing:
		// The instance closes the connection after this answer, as it
		// said: the requests after it were not answered.
		c.close()
		e.requeue(batch[answered:], queue)
	case len(batch) > 1 && c.unread():
		// More bytes than answers to the requests sent: which answer
		// belongs to which request cannot be known. Send each again, alone.
		c.close()
		for i := range batch {
			batch[i].solo = true
		}
		e.requeue(batch, queue)
		return
	}
	e.apply(ctx, t, batch[:answered], verdicts, retry)
}

// verdict is what the judge made of one answer, kept until the whole
// batch's answers are known to pair with its requests.
type verdict struct {
	ok, again  bool
	err        error
	status     int
	retryAfter int // seconds; -1: none
}

// apply records the verdicts of answered items.
func (e *engine) apply(ctx context.Context, t *instState, items []item, vs []verdict, retry *[]item) {
	for i := range items {
		it, v := &items[i], vs[i]
		row := e.row(t, it.u)
		row.status = uint16(v.status)
		row.attempts = satInc(row.attempts)
		switch {
		case v.ok:
			e.complete(it, row, true, 0)
		case v.again && int(row.attempts) < e.p.Attempts && ctx.Err() == nil:
			row.err = e.rep.addErr(v.err)
			it.ready = time.Now().Add(e.backoff(int(row.attempts), v.retryAfter)).UnixNano()
			*retry = append(*retry, *it)
		default:
			e.complete(it, row, false, e.rep.addErr(v.err))
		}
	}
}

// broken handles a connection that failed before the answer to batch[k]
// was read: batch[k:] got no answer.
func (e *engine) broken(ctx context.Context, t *instState, batch []item, k int, reused bool, err error, queue, retry *[]item) {
	rest := batch[k:]
	switch {
	case ctx.Err() != nil:
		// Stopped: what was written counts as an attempt that got no answer.
		for i := range rest {
			e.attemptFailed(ctx, t, &rest[i], err, false, retry)
		}
	case k > 0 && !errors.Is(err, errProtocol) && !isTimeout(err):
		// The instance answered earlier requests, then closed: it ended
		// the kept-alive connection. Send the rest again on a new one.
		e.requeue(rest, queue)
	case reused && isClosed(err) && !rest[0].stale && e.ps.idempotent:
		// A kept-alive connection the instance closed meanwhile: send again
		// on a new one, once (as net/http does).
		for i := range rest {
			rest[i].stale = true
		}
		e.requeue(rest, queue)
	default:
		// The instance itself failed on this request: that is an attempt.
		// Its followers were written but are not at fault: send them again
		// (only idempotent requests are pipelined).
		if !errors.Is(err, errProtocol) || k == 0 {
			e.connFailed(t, err)
		}
		e.attemptFailed(ctx, t, &rest[0], err, true, retry)
		e.requeue(rest[1:], queue)
	}
}

func (e *engine) requeue(items []item, queue *[]item) { *queue = append(*queue, items...) }

// connFailed counts a connection failure; BreakerThreshold in a row give
// the instance up.
func (e *engine) connFailed(t *instState, err error) {
	if int(t.fails.Add(1)) < BreakerThreshold || t.dead.Load() != 0 {
		return
	}
	cause := fmt.Errorf("%w: %d connection failures in a row (last: %s)", ErrUnreachable, BreakerThreshold, describe(err, e.p.Timeout))
	ref := e.rep.addErr(&InstanceError{Instance: t.in, Reason: "not sent: " + cause.Error(), Err: cause})
	t.dead.CompareAndSwap(0, ref)
}

// attemptFailed records a failed attempt of it (no answer came) and
// schedules another when allowed.
func (e *engine) attemptFailed(ctx context.Context, t *instState, it *item, err error, retryable bool, retry *[]item) {
	row := e.row(t, it.u)
	row.attempts = satInc(row.attempts)
	ierr := &InstanceError{Instance: t.in, URL: e.rep.URLs[it.u].String(), Reason: describe(err, e.p.Timeout), Err: err}
	if ctx.Err() != nil {
		ierr.Reason, ierr.Err = "stopped before an answer came: "+ctx.Err().Error(), fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
		retryable = false
	}
	ref := e.rep.addErr(ierr)
	if retryable && int(row.attempts) < e.p.Attempts && (it.first == 0 || e.ps.idempotent) {
		row.err = ref
		it.ready = time.Now().Add(e.backoff(int(row.attempts), -1)).UnixNano()
		*retry = append(*retry, *it)
		return
	}
	e.complete(it, row, false, ref)
}

// giveUp fails every URL the instance still has, sending nothing more.
func (e *engine) giveUp(t *instState, ref uint32, lists ...[]item) {
	for _, l := range lists {
		for i := range l {
			row := e.row(t, l[i].u)
			if row.attempts == 0 || row.err == 0 {
				row.err = ref
			}
			e.complete(&l[i], row, false, row.err)
		}
	}
	start := t.next.Swap(int64(t.n))
	for i := start; i < int64(t.n); i++ {
		it := item{u: e.url(t, int(i))}
		e.complete(&it, e.row(t, it.u), false, ref)
	}
}

func (e *engine) complete(it *item, row *row, ok bool, errRef uint32) {
	row.flags |= rowDone
	if ok {
		row.flags |= rowOK
		row.err = 0
	} else {
		row.flags &^= rowOK
		row.err = errRef
		e.failed.Add(1)
	}
	if it.first != 0 {
		row.setDur(time.Since(time.Unix(0, it.first)))
	}
	e.done.Add(1)
}

// finish reports what was never finished (the run stopped first).
func (e *engine) finish(ctx context.Context) {
	for _, t := range e.insts {
		var ref uint32
		for i := range t.n {
			u := e.url(t, i)
			row := e.row(t, u)
			if row.flags&rowDone != 0 {
				continue
			}
			row.flags |= rowDone
			row.flags &^= rowOK
			e.failed.Add(1)
			if row.attempts > 0 && row.err != 0 {
				continue // its last failure says why
			}
			if ref == 0 {
				why := errNotSent
				if ctx.Err() != nil {
					why = fmt.Errorf("%w (%w: %w)", errNotSent, ErrStopped, ctx.Err())
				}
				ref = e.rep.addErr(&InstanceError{Instance: t.in, Reason: why.Error(), Err: why})
			}
			row.err = ref
		}
	}
}

func satInc(n uint8) uint8 {
	if n == 255 {
		return n
	}
	return n + 1
}

// backoff is the delay before attempt n+1: Backoff doubled each time, with
// jitter, or the instance's Retry-After when longer.
func (e *engine) backoff(n int, retryAfter int) time.Duration {
	d := e.p.Backoff << (n - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if ra := time.Duration(retryAfter) * time.Second; ra > d {
		d = min(ra, maxBackoff)
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// describe says in words what a connection error means.
func describe(err error, timeout time.Duration) string {
	var oe *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the cache running and listening on that port?)"
	case isTimeout(err):
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, errProtocol):
		return "answered something that is not a valid HTTP/1.1 response: " + err.Error()
	case isClosed(err):
		return "connection closed before an answer came"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "cannot connect: " + oe.Err.Error()
	}
	return err.Error()
}

// retryable says whether an answer's status is worth another attempt: 429
// and 5xx, but not 501 (not implemented) and 505 (version not supported),
// which say the same every time.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests ||
		status >= 500 && status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported
}
