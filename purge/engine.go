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

// staleAfter is how long a kept-alive connection may sit idle before a
// close found on it says nothing about the instance (an idle timeout, not
// a limit on requests per connection).
const staleAfter = time.Second

// pass is one step's requests: every URL (or, in a later verify round, the
// ones still to check) to every instance.
type pass struct {
	step   Step
	method string
	urls   *URLList
	// Per host of urls: the header lines after the request line (Host, a
	// ban's X-Host), the TLS server name (https) and, in edge mode, the
	// address to dial. A request's head is written when its batch is.
	hostLines  [][]byte
	serverName []string
	dial       []string
	// common holds the headers shared by every request and the blank line
	// that ends them.
	common []byte
	read   readOpts
	// depth is the most requests in flight on one connection.
	depth int
	// readBuf is a connection's read buffer: room for a pipelined batch's
	// answers in one read; small when one answer's headers are all that is
	// wanted (a GET's body is not read).
	readBuf int
	// idempotent requests may be sent again after they were written, when
	// no answer came for them.
	idempotent bool
	// judge reads the answer to result k: it says whether it is OK, and
	// otherwise whether another attempt may help and why not OK.
	judge func(k int, r *response, bytesRead int64) (ok, retry bool, err error)
	// todo, when set, lists per instance the URL indexes to send (a later
	// verify round); nil sends every URL.
	todo [][]int32
}

// engine runs a pass over a bounded set of workers. Each worker owns one
// connection at a time, to one instance, so the connections open never
// exceed the connection limit. A worker takes a batch of URLs of its
// instance, writes their requests in one go and reads the answers in
// order (HTTP/1.1 pipelining), keeping the connection for the next batch.
//
// The wire is not trusted to pipeline: each connection starts shallow and
// deepens as answers arrive, and what an instance shows of itself (a close
// after k answers, a stall, answers that do not pair) is remembered for
// the rest of the run (see wireState and judgeCut).
type engine struct {
	p        *plan
	ps       *pass
	rep      *Report
	tls      *tls.Config
	insts    []*instState
	maxConns int
	budget   fdBudget
	// hostAddr, in edge mode, is the address state of each host's route:
	// every machine behind one edge address shares it.
	hostAddr []*addrState

	done, failed atomic.Int64
	total        int
}

// addrState is an address dialled: every instance and URL whose route
// goes there shares it, so that an address that cannot be reached is
// given up once for all of them.
type addrState struct {
	addr string
	// fails counts connection failures in a row, with no connection made
	// between them.
	fails atomic.Int32
	// dead is the reference of the error that gave the address up.
	dead atomic.Uint32
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
	// addr is the instance's own address (nil in edge mode).
	addr *addrState
	// fails counts requests in a row that got no answer on a connection
	// that had answered nothing.
	fails atomic.Int32
	// dead is the reference of the error that gave the instance up.
	dead atomic.Uint32

	// host is the instance in tr, which keeps what it learns for later
	// runs and seeded wire with what earlier runs learned.
	host hostKey
	tr   *Transport
	mu   sync.Mutex
	wire wireState
}

// wireState is what an instance has shown of how it handles a connection,
// learned during the run (from what the transport knew before it). It
// only ever gets more careful.
type wireState struct {
	// depth is the most requests in flight on one connection: the pass's,
	// or 1 once the instance stalled or answered in a way that does not
	// pair with pipelined requests.
	depth int
	// limit is the most requests one connection carries: the answers after
	// which the instance closed a connection (a keep-alive limit, such as
	// nginx's keepalive_requests); 0 until one was seen.
	limit int
	// proven is the deepest batch answered in full: where a new connection
	// starts.
	proven int
}

func (t *instState) wireNow() wireState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wire
}

// learn applies what a cut taught about the instance.
func (t *instState) learn(f fate, served int) {
	if !f.oneAtATime && !f.limit {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.oneAtATime {
		t.wire.depth, t.wire.proven = 1, 1
	}
	if f.limit && served > 0 && (t.wire.limit == 0 || served < t.wire.limit) {
		t.wire.limit = served
	}
	t.tr.learn(t.host, f.oneAtATime, t.wire.limit)
}

func (t *instState) answered(batch int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.wire.proven = max(t.wire.proven, min(batch, t.wire.depth))
	t.tr.answered(t.host, t.wire.proven)
}

// item is one URL in a worker's hands.
type item struct {
	u     int32
	tries uint8 // failed tries: each counts against Job.Attempts
	solo  bool  // send alone: in a batch, its answer could not be paired
	// raced: already sent again once, free, after a kept-alive connection
	// turned out closed.
	raced bool
	ready int64 // UnixNano before which it must not be sent again
}

// queues are a lane's items waiting to go again: now, or after a backoff.
type queues struct {
	now, later []item
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
			c := newConn(e.p.tr, e.tls, e.p.Timeout, e.ps.readBuf)
			defer c.done()
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
	var q queues
	batch := make([]item, 0, e.ps.depth)
	for {
		if ref := e.deadRef(t); ref != 0 {
			e.giveUp(t, ref, q.now, q.later)
			return
		}
		if ctx.Err() != nil {
			return // finish() reports what is left
		}
		batch = e.fill(t, batch[:0], &q)
		if len(batch) == 0 {
			if len(q.later) == 0 {
				return
			}
			next := q.later[0].ready
			for _, it := range q.later {
				next = min(next, it.ready)
			}
			_ = sleepCtx(ctx, time.Until(time.Unix(0, next)))
			continue
		}
		e.send(ctx, c, t, batch, &q)
	}
}

// deadRef is the reference of the error that gave t up, or 0.
func (e *engine) deadRef(t *instState) uint32 {
	if ref := t.dead.Load(); ref != 0 {
		return ref
	}
	if t.addr != nil {
		return t.addr.dead.Load()
	}
	return 0
}

// fill takes up to the instance's depth of items for one connection: those
// to send again first, then retries whose backoff is over, then new URLs.
// Every item of a batch goes the same route. In edge mode, an item whose
// route's address was given up is finished at once.
func (e *engine) fill(t *instState, batch []item, q *queues) []item {
	depth := t.wireNow().depth
	take := func(it item) bool {
		if a := e.addrOf(t, it.u); a != nil && a != t.addr {
			if ref := a.dead.Load(); ref != 0 {
				e.abandon(t, it, ref)
				return true
			}
		}
		if len(batch) > 0 && (batch[0].solo || it.solo || !e.sameRoute(batch[0].u, it.u)) {
			return false
		}
		batch = append(batch, it)
		return true
	}
	rest := q.now[:0]
	for _, it := range q.now {
		if len(batch) >= depth || !take(it) {
			rest = append(rest, it)
		}
	}
	q.now = rest
	now := time.Now().UnixNano()
	rest = q.later[:0]
	for _, it := range q.later {
		if len(batch) >= depth || it.ready > now || !take(it) {
			rest = append(rest, it)
		}
	}
	q.later = rest
	for len(batch) < depth {
		n := int64(depth - len(batch))
		start := t.next.Add(n) - n
		if start >= int64(t.n) {
			break
		}
		for i := start; i < min(start+n, int64(t.n)); i++ {
			it := item{u: e.url(t, int(i))}
			if !take(it) {
				q.now = append(q.now, it)
			}
		}
		if len(q.now) > 0 {
			break
		}
	}
	return batch
}

func (e *engine) sameRoute(a, b int32) bool {
	ha, hb := e.ps.urls.hostOf(int(a)), e.ps.urls.hostOf(int(b))
	ps := e.ps
	return ha == hb || ps.serverName[ha] == ps.serverName[hb] && (ps.dial == nil || ps.dial[ha] == ps.dial[hb])
}

func (e *engine) route(t *instState, u int32) route {
	h := e.ps.urls.hostOf(int(u))
	r := route{addr: t.in.addr(), serverName: e.ps.serverName[h]}
	if e.ps.dial != nil {
		r.addr = e.ps.dial[h]
	}
	return r
}

// addrOf is the address state of u's route from t.
func (e *engine) addrOf(t *instState, u int32) *addrState {
	if e.hostAddr != nil {
		return e.hostAddr[e.ps.urls.hostOf(int(u))]
	}
	return t.addr
}

// send writes a batch on one connection and reads the answers in order.
// An answer is paired with its request by position only, so any doubt
// about the stream (an answer that is not one, bytes nobody accounted
// for, a broken connection) ends the connection, and judgeCut says what
// that means for the requests left without an answer.
func (e *engine) send(ctx context.Context, c *conn, t *instState, batch []item, q *queues) {
	w := t.wireNow()
	if c.nc != nil && (c.inst != t || w.limit > 0 && c.carried >= w.limit) {
		c.release() // another instance's (kept for it), or it carried what this instance allows one connection
	}
	a := e.addrOf(t, batch[0].u)
	dialed := time.Now()
	kept, err := c.use(ctx, t, e.route(t, batch[0].u))
	if err != nil {
		e.dialFailed(ctx, t, a, batch, err, time.Since(dialed), q)
		return
	}
	if !kept {
		if e.hostAddr == nil {
			// The address answered the dial. (In edge mode its count holds
			// connections that answered nothing too: only an answer resets it.)
			a.fails.Store(0)
		}
		c.inst, c.served, c.carried, c.window = t, 0, 0, max(1, w.proven)
	}
	room := min(c.window, w.depth)
	if w.limit > 0 {
		room = min(room, w.limit-c.carried)
	}
	if len(batch) > room {
		q.now = append(slices.Clone(batch[room:]), q.now...)
		batch = batch[:room]
	}
	c.wbuf, c.ends = c.wbuf[:0], c.ends[:0]
	for _, it := range batch {
		c.wbuf = e.appendRequest(c.wbuf, t, it.u)
		c.ends = append(c.ends, len(c.wbuf))
	}
	c.deadlineSet = time.Time{} // a new batch: a whole timeout from now
	c.deadline()
	sent := time.Now()
	n, werr := c.nc.Write(c.wbuf)
	written := 0
	for written < len(batch) && (written == 0 && n > 0 || written > 0 && c.ends[written-1] < n) {
		written++
	}
	for i := range batch[:written] {
		r := e.row(t, batch[i].u)
		r.attempts = satInc(r.attempts)
	}
	c.carried += written
	served0 := c.served
	if werr != nil && written == 0 {
		// Nothing left: a connection that failed before it carried a byte.
		c.close()
		if kept {
			// Kept alive, and closed by the instance meanwhile: nothing was
			// written, nothing failed. Sent again on a new connection.
			q.now = append(slices.Clone(batch), q.now...)
			return
		}
		e.dialFailed(ctx, t, a, batch, werr, time.Since(dialed), q)
		return
	}
	if werr != nil {
		c.close()
		q.now = append(q.now, batch[written:]...) // never written: not an attempt
		e.cut(ctx, t, batch[:written], cutInfo{err: werr, served: c.served, kept: kept, idle: kept && time.Since(c.lastAnswer) > staleAfter, batch: len(batch), addr: a}, sent, q)
		return
	}
	r := &c.resp
	verdicts := c.verdicts[:0]
	closing := false
	for k := range batch {
		pc := c.pc
		before := pc.read
		if err := readResponse(c.br, &e.ps.read, r); err != nil {
			c.close()
			c.verdicts = verdicts
			e.apply(ctx, t, batch[:k], verdicts, sent, q)
			e.cut(ctx, t, batch[k:], cutInfo{err: err, served: c.served, answered: k, kept: kept, idle: kept && k == 0 && time.Since(c.lastAnswer) > staleAfter, batch: len(batch), addr: a}, sent, q)
			return
		}
		c.served++
		now := time.Now()
		c.lastAnswer = now
		t.fails.Store(0)
		if e.hostAddr != nil {
			a.fails.Store(0)
		}
		v := verdict{status: r.status, retryAfter: r.retryAfter, at: now.UnixNano()}
		v.ok, v.again, v.err = e.ps.judge(e.rep.Index(int(batch[k].u), t.idx), r, pc.read-before)
		verdicts = append(verdicts, v)
		if r.close {
			closing = true
			break
		}
		c.deadlineAt(now)
	}
	c.verdicts = verdicts
	answered := len(verdicts)
	switch state := c.unread(); {
	case closing:
		// The connection ends with this answer: the instance said so (and
		// then did not process the requests after it, RFC 9112 9.6), or its
		// body runs to the connection's end.
		c.close()
		e.apply(ctx, t, batch[:answered], verdicts, sent, q)
		if answered < len(batch) {
			info := cutInfo{announced: r.announced, err: errBodyToEnd, served: c.served, answered: answered, kept: kept, batch: len(batch)}
			if r.announced {
				info.err = nil
			}
			e.cut(ctx, t, batch[answered:], info, sent, q)
		} else {
			t.learn(fate{limit: true}, c.served)
		}
		return
	case state > 0 && len(batch) > 1:
		// More bytes than answers to the requests sent: which answer
		// belongs to which request cannot be known. Send each again, alone.
		c.close()
		e.cut(ctx, t, batch, cutInfo{err: errUnpaired, served: served0, kept: kept, batch: len(batch)}, sent, q)
		return
	case state > 0:
		// One request, one answer, and bytes after it: the answer is this
		// request's (it came first on a clean connection), but nothing
		// after it can be paired.
		c.close()
		t.learn(fate{oneAtATime: true}, 0)
	case state < 0:
		// Closed right after the last answer: a normal end, and the number
		// of requests this instance lets one connection carry.
		c.close()
		t.learn(fate{limit: true}, c.served)
	}
	t.answered(len(batch))
	c.window = max(c.window, c.served)
	e.apply(ctx, t, batch[:answered], verdicts, sent, q)
}

// appendRequest appends the request for URL u to instance t.
func (e *engine) appendRequest(b []byte, t *instState, u int32) []byte {
	ps := e.ps
	b = append(b, ps.method...)
	b = append(b, ' ')
	b = append(b, ps.urls.target(int(u))...)
	b = append(b, " HTTP/1.1\r\n"...)
	b = append(b, ps.hostLines[ps.urls.hostOf(int(u))]...)
	b = append(b, t.hdr...)
	return append(b, ps.common...)
}

// verdict is what the judge made of one answer, kept until the whole
// batch's answers are known to pair with its requests.
type verdict struct {
	ok, again  bool
	err        error
	status     int
	retryAfter int   // seconds; -1: none
	at         int64 // UnixNano when the answer was read
}

// apply records the verdicts of answered items.
func (e *engine) apply(ctx context.Context, t *instState, items []item, vs []verdict, sent time.Time, q *queues) {
	for i := range items {
		it, v := &items[i], vs[i]
		row := e.row(t, it.u)
		row.status = uint16(v.status)
		row.setDur(time.Duration(v.at - sent.UnixNano()))
		it.tries++
		switch {
		case v.ok:
			e.complete(row, true, 0)
		case v.again && int(it.tries) < e.p.Attempts && ctx.Err() == nil:
			row.err = e.rep.addErr(v.err)
			it.ready = time.Now().Add(e.backoff(int(it.tries), v.retryAfter)).UnixNano()
			q.later = append(q.later, *it)
		default:
			e.complete(row, false, e.rep.addErr(v.err))
		}
	}
}

// errBodyToEnd is why requests after an answer without a length went
// unanswered.
var errBodyToEnd = errors.New("an earlier answer on the connection had no length: its body ran to the connection's end")

// errUnpaired marks answers that could not be paired with their requests.
var errUnpaired = errors.New("the answers could not be paired with the requests: the instance sent more than one answer per request")

// cutInfo is how a batch ended before every request written had its
// answer.
type cutInfo struct {
	err error // the write or read error; nil for a close the instance announced
	// announced: the last answer said Connection: close.
	announced bool
	served    int  // answers the connection gave before the cut, earlier batches included
	answered  int  // of them, answers to this batch
	kept      bool // the connection was kept alive from an earlier batch
	idle      bool // a kept-alive connection, idle long enough to be closed by a timeout
	batch     int  // the batch's size
	addr      *addrState
}

// fate is what a cut means for the written requests left without an
// answer, and what it shows of the instance. It is decided by judgeCut
// alone, apart from acting on it (as net/http's shouldRetryRequest).
type fate struct {
	// fault: the instance failed these requests (no answer on a
	// connection that answered nothing): it counts toward giving it up,
	// and another try waits a backoff.
	fault bool
	// again: they may be sent again (idempotent requests with tries left).
	again bool
	// free: sending again costs no try: the instance said it would not
	// process them. raced: sending again costs no try, once per request:
	// the kept-alive connection was closed as the batch went out (the race
	// every HTTP client retries).
	free, raced bool
	// solo: send each again alone.
	solo bool
	// oneAtATime: the instance does not pipeline: one request in flight
	// per connection from now on.
	oneAtATime bool
	// limit: the instance ends connections after the answers it gave on
	// this one: no connection carries more from now on.
	limit bool
}

// judgeCut decides what a cut means.
func judgeCut(c cutInfo, idempotent bool) fate {
	switch {
	case c.announced:
		// Connection: close after the last answer: the rest were not
		// processed, and this is how many the instance takes per connection.
		return fate{again: true, free: true, limit: true}
	case errors.Is(c.err, errUnpaired), errors.Is(c.err, errProtocol) && c.served > 0:
		// Answers that do not pair, or garbage after good answers: the
		// stream cannot be trusted past one answer.
		return fate{again: idempotent, solo: true, oneAtATime: true}
	case errors.Is(c.err, errProtocol):
		return fate{again: idempotent, oneAtATime: c.batch > 1}
	case errors.As(c.err, new(*bodyError)):
		// It answered; its body did not arrive in full.
		return fate{again: idempotent}
	case c.served == 0:
		// Nothing answered on this connection: the instance failed.
		return fate{fault: true, again: idempotent}
	case c.kept && c.answered == 0 && isClosed(c.err):
		// A kept-alive connection found closed by this batch: closed while
		// idle (a timeout), or after the instance's last answer on it.
		return fate{again: idempotent, raced: true, limit: !c.idle}
	case isTimeout(c.err):
		// Answers, then silence: the instance does not take more on one
		// connection. One request per connection from now on when it
		// stalled on a lone request; one at a time otherwise.
		return fate{again: idempotent, oneAtATime: true, limit: c.batch == 1}
	}
	// Answers, then the connection closed: a keep-alive limit.
	return fate{again: idempotent, limit: true}
}

// cut handles the written requests of a batch left without an answer.
func (e *engine) cut(ctx context.Context, t *instState, items []item, c cutInfo, sent time.Time, q *queues) {
	if len(items) == 0 {
		return
	}
	if ctx.Err() != nil {
		for i := range items {
			e.stopped(ctx, t, &items[i], sent)
		}
		return
	}
	f := judgeCut(c, e.ps.idempotent)
	t.learn(f, c.served)
	if errors.As(c.err, new(*bodyError)) {
		t.fails.Store(0) // it answered
	}
	if f.fault {
		e.noAnswer(t, c.addr, c.err)
	}
	why := c.err
	if c.announced {
		why = errAnnouncedClose
	}
	for i := range items {
		it := &items[i]
		row := e.row(t, it.u)
		switch {
		case f.free:
		case f.raced && !it.raced:
			it.raced = true
		default:
			it.tries++
		}
		it.solo = it.solo || f.solo
		row.setDur(time.Since(sent))
		var be *bodyError
		if i == 0 && errors.As(why, &be) {
			row.status = uint16(be.status)
		}
		// Written: until an answer comes, this is why it has none.
		row.err = e.rep.addErr(e.noAnswerErr(t, it.u, why, c.served))
		switch {
		case !f.again || int(it.tries) >= e.p.Attempts:
			e.complete(row, false, row.err)
		case f.fault:
			it.ready = time.Now().Add(e.backoff(int(it.tries), -1)).UnixNano()
			q.later = append(q.later, *it)
		default:
			q.now = append(q.now, *it)
		}
	}
}

// errAnnouncedClose is why requests after a Connection: close went
// unanswered.
var errAnnouncedClose = errors.New("the instance closed the connection, as its last answer said")

// noAnswerErr is why a written request got no answer.
func (e *engine) noAnswerErr(t *instState, u int32, err error, served int) error {
	var reason string
	var be *bodyError
	switch {
	case errors.As(err, &be), errors.Is(err, errProtocol), errors.Is(err, errUnpaired), errors.Is(err, errAnnouncedClose), errors.Is(err, errBodyToEnd):
		reason = describe(err, e.p.Timeout)
	case isClosed(err) && served > 0:
		reason = fmt.Sprintf("no answer (closed after %d answers)", served)
	case isClosed(err):
		reason = "no answer (the connection closed)"
	case isTimeout(err) && served > 0:
		reason = fmt.Sprintf("no answer within %s (after %d answers on the connection)", e.p.Timeout, served)
	case isTimeout(err):
		reason = fmt.Sprintf("no answer within %s", e.p.Timeout)
	default:
		reason = "no answer: " + describe(err, e.p.Timeout)
	}
	return &InstanceError{Instance: t.in, URL: e.ps.urls.At(int(u)).String(), Reason: reason, Err: err}
}

// stopped records a written request whose answer the run stopped waiting
// for.
func (e *engine) stopped(ctx context.Context, t *instState, it *item, sent time.Time) {
	row := e.row(t, it.u)
	row.setDur(time.Since(sent))
	why := stopCause(ctx)
	ierr := &InstanceError{Instance: t.in, URL: e.ps.urls.At(int(it.u)).String(), Reason: "stopped before an answer came: " + why.Error(), Err: fmt.Errorf("%w: %w", ErrStopped, why)}
	e.complete(row, false, e.rep.addErr(ierr))
}

// stopCause is why ctx ended, in words: the job's deadline, a signal the
// caller named (context.WithCancelCause), or the caller's own deadline.
func stopCause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return ctx.Err()
}

// noAnswer counts a request that got no answer on a connection that had
// answered nothing; BreakerThreshold in a row give the instance up. In
// edge mode the connection was the edge's, shared by every machine: the
// address counts it, and is given up for all of them.
func (e *engine) noAnswer(t *instState, a *addrState, err error) {
	fails, dead, what := &t.fails, &t.dead, "the instance"
	if e.hostAddr != nil {
		fails, dead, what = &a.fails, &a.dead, "the address "+a.addr
	}
	if int(fails.Add(1)) < BreakerThreshold || dead.Load() != 0 {
		return
	}
	last := "; the last: " + describe(err, e.p.Timeout)
	if isTimeout(err) {
		last = " within " + e.p.Timeout.String()
	}
	cause := fmt.Errorf("%w: given up after %d requests in a row to %s got no answer%s", ErrNotAnswering, BreakerThreshold, what, last)
	ref := e.rep.addErr(&InstanceError{Instance: t.in, Reason: "not sent: " + cause.Error(), Err: cause})
	dead.CompareAndSwap(0, ref)
}

// dialFailed handles a batch whose connection could not be made (in
// took): nothing was written. Each item has failed a try; the address
// counts a failure, and BreakerThreshold in a row give it up, for every
// instance whose route goes there.
func (e *engine) dialFailed(ctx context.Context, t *instState, a *addrState, batch []item, err error, took time.Duration, q *queues) {
	for _, it := range batch {
		if row := e.row(t, it.u); row.attempts == 0 {
			row.setDur(took) // the time it waited to connect, not 0s
		}
	}
	if ctx.Err() != nil {
		q.now = append(q.now, batch...) // finish() reports them as not sent
		return
	}
	if int(a.fails.Add(1)) >= BreakerThreshold && a.dead.Load() == 0 {
		what := "the instance"
		if e.hostAddr != nil {
			what = a.addr + ", the address every machine is reached through"
		}
		cause := fmt.Errorf("%w: given up after %d connection failures in a row to %s; the last: %s", ErrUnreachable, BreakerThreshold, what, describeConnect(err, e.p.Timeout))
		ref := e.rep.addErr(&InstanceError{Instance: t.in, Reason: "not sent: " + cause.Error(), Err: cause})
		a.dead.CompareAndSwap(0, ref)
	}
	for i := range batch {
		it := &batch[i]
		it.tries++
		row := e.row(t, it.u)
		if row.attempts > 0 {
			// Written before: its failure then says more than this one.
			if int(it.tries) < e.p.Attempts {
				it.ready = time.Now().Add(e.backoff(int(it.tries), -1)).UnixNano()
				q.later = append(q.later, *it)
			} else {
				e.complete(row, false, row.err)
			}
			continue
		}
		ierr := &InstanceError{Instance: t.in, URL: e.ps.urls.At(int(it.u)).String(), Reason: "not sent: " + describeConnect(err, e.p.Timeout), Err: err}
		row.err = e.rep.addErr(ierr)
		if int(it.tries) < e.p.Attempts {
			it.ready = time.Now().Add(e.backoff(int(it.tries), -1)).UnixNano()
			q.later = append(q.later, *it)
			continue
		}
		e.complete(row, false, row.err)
	}
}

// giveUp fails every URL the instance still has, sending nothing more.
func (e *engine) giveUp(t *instState, ref uint32, lists ...[]item) {
	for _, l := range lists {
		for _, it := range l {
			e.abandon(t, it, ref)
		}
	}
	start := t.next.Swap(int64(t.n))
	for i := start; i < int64(t.n); i++ {
		e.abandon(t, item{u: e.url(t, int(i))}, ref)
	}
}

// abandon finishes an item that will not be sent (again): a request that
// was written keeps its own failure; one never written says why.
func (e *engine) abandon(t *instState, it item, ref uint32) {
	row := e.row(t, it.u)
	if row.attempts == 0 || row.err == 0 {
		row.err = ref
	}
	e.complete(row, false, row.err)
}

func (e *engine) complete(row *row, ok bool, errRef uint32) {
	row.flags |= rowDone
	if ok {
		row.flags |= rowOK
		row.err = 0
	} else {
		row.flags &^= rowOK
		row.err = errRef
		e.failed.Add(1)
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
				continue // written: its last failure says why
			}
			if ref == 0 {
				why := errNotSent
				if ctx.Err() != nil {
					why = &stoppedFirst{stopCause(ctx)}
				}
				ref = e.rep.addErr(&InstanceError{Instance: t.in, Reason: why.Error(), Err: why})
			}
			row.err = ref
		}
	}
}

// stoppedFirst is why a request was never sent when the run was stopped:
// "not sent: the run was stopped first: <cause>", each said once.
// errors.Is finds ErrStopped and the cause.
type stoppedFirst struct{ cause error }

func (e *stoppedFirst) Error() string   { return errNotSent.Error() + ": " + e.cause.Error() }
func (e *stoppedFirst) Unwrap() []error { return []error{errNotSent, ErrStopped, e.cause} }

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
	var be *bodyError
	switch {
	case errors.As(err, &be):
		return be.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the cache running and listening on that port?)"
	case isTimeout(err):
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, errProtocol):
		return "answered something that is not a valid HTTP/1.1 response: " + err.Error()
	case errors.Is(err, errUnpaired), errors.Is(err, errAnnouncedClose), errors.Is(err, errBodyToEnd):
		return err.Error()
	case isClosed(err):
		return "connection closed before an answer came"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "cannot connect: " + oe.Err.Error()
	}
	return err.Error()
}

// describeConnect says in words why a connection could not be made:
// nothing was written on it, so a timeout is no "no answer".
func describeConnect(err error, timeout time.Duration) string {
	var oe *net.OpError
	switch {
	case !isTimeout(err):
		return describe(err, timeout)
	case !errors.As(err, &oe):
		return fmt.Sprintf("the TLS handshake did not finish within %s", timeout) // its context's deadline
	case oe.Op == "dial":
		return fmt.Sprintf("could not connect within %s", timeout)
	}
	return fmt.Sprintf("could not write the request within %s", timeout)
}

// retryable says whether an answer's status is worth another attempt: 429
// and 5xx, but not 501 (not implemented) and 505 (version not supported),
// which say the same every time.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests ||
		status >= 500 && status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported
}
