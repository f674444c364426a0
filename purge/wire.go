package purge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// The wire format is read by hand, not by net/http, for three reasons: a
// response is read only as far as a purge needs (status, the few headers
// that matter, the body's length), every byte an instance sends is bounded
// (a 100 MB header line must not cost 100 MB), and pipelined responses must
// be paired with their requests exactly (interim 1xx answers skipped, a
// HEAD answer that carries a body detected).

const (
	// maxHeaderBytes bounds the status line and headers of one answer,
	// interim answers included.
	maxHeaderBytes = 64 << 10
	// maxInterim bounds the 1xx answers before the final one.
	maxInterim = 16
	// maxDrain bounds the body bytes read to keep a connection for the
	// next request; a longer body closes the connection instead.
	maxDrain = 1 << 20
	// keepBody is how much of a failed answer's body is kept to explain
	// the failure.
	keepBody = 4 << 10
	// maxHashBody bounds the body bytes hashed to compare an instance's
	// copy with the origin's; a longer body cannot be compared by content.
	maxHashBody = 16 << 20
)

// errProtocol marks an answer that is not HTTP/1.1 as cdnpurge expects it.
var errProtocol = errors.New("protocol error")

func protocolErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, a...))
}

// response is what is read of one answer.
type response struct {
	status int
	reason []byte // the reason phrase (reused from answer to answer)
	// close says the connection cannot carry another request; announced,
	// that the instance said so (Connection: close, or HTTP/1.0 without
	// keep-alive), rather than sending a body that ends with the connection.
	close, announced bool
	// header holds only the headers the reader asked for.
	header http.Header
	// retryAfter is the Retry-After header, in seconds; -1 when absent.
	retryAfter int
	// varnishIDs counts the ids of the last X-Varnish header (two: a cache
	// hit; one: a miss, pass or synthetic answer); 0 when absent.
	varnishIDs int
	// age says the answer has an Age header: Varnish adds one to what it
	// delivers from its cache (hit or miss), never to a synthetic answer.
	age bool
	// body is the start of the body, when the reader asked for it.
	body []byte
	// objects is the number of objects a purge answer says it removed
	// (the Purged header), -1 when it does not say; purgedAt is the
	// instance's time of the purge (Cdnpurge-Purge-Time) in microseconds
	// since the epoch, 0 when it does not say.
	objects  int64
	purgedAt int64
	// sum hashes the body when the reader asked for it (readOpts.hash);
	// hashed counts the bytes hashed, cut says the body was longer than
	// maxHashBody (so the sum is not the body's).
	sum    hash.Hash
	hashed int64
	cut    bool
}

// readOpts says how to read an answer.
type readOpts struct {
	// head: the request was HEAD, so the answer has no body.
	head bool
	// skipBody: do not read the body at all; the connection is then closed.
	skipBody bool
	// keepBody: keep the start of the body (up to keepBody bytes).
	keepBody bool
	// wantBody, when set, says whether the body of an answer with this
	// status is wanted at all: an answer without a length whose body is not
	// wanted ends at its head (the connection is then closed), so that a
	// body that never ends costs nothing.
	wantBody func(status int) bool
	// keep says which headers to keep: the canonical name, or "" to drop.
	keep func(name []byte) string
	// hash: read the whole body (up to maxHashBody) into response.sum.
	hash bool
}

// readResponse reads one final answer from br, skipping interim (1xx)
// answers, and consumes its body so that the next answer can be read.
func readResponse(br *bufio.Reader, o *readOpts, r *response) error {
	*r = response{header: r.header, reason: r.reason[:0], body: r.body[:0], retryAfter: -1, objects: -1, sum: r.sum}
	if o.hash {
		if r.sum == nil {
			r.sum = sha256.New()
		}
		r.sum.Reset()
	}
	for k := range r.header {
		delete(r.header, k)
	}
	budget := maxHeaderBytes
	for interim := 0; ; interim++ {
		cl, chunked, err := readHead(br, o, r, &budget)
		if err != nil {
			return err
		}
		switch {
		case r.status == http.StatusSwitchingProtocols:
			return protocolErr("the instance answered 101 Switching Protocols")
		case r.status >= 100 && r.status < 200:
			if interim >= maxInterim {
				return protocolErr("more than %d interim (1xx) answers", maxInterim)
			}
			continue
		}
		return readBody(br, o, r, cl, chunked)
	}
}

// readHead reads a status line and headers. It returns the Content-Length
// (-1 when none) and whether the body is chunked.
func readHead(br *bufio.Reader, o *readOpts, r *response, budget *int) (int64, bool, error) {
	line, err := readLine(br, budget)
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || !isDigits(line[9:12]) || len(line) > 12 && line[12] != ' ' {
		return 0, false, protocolErr("not an HTTP/1.x status line: %q", clip(line, 40))
	}
	r.status, _ = strconv.Atoi(string(line[9:12]))
	if r.status < 100 {
		return 0, false, protocolErr("status %d", r.status)
	}
	r.reason = r.reason[:0]
	if len(line) > 13 {
		r.reason = append(r.reason, clip(line[13:], 200)...)
	}
	http10 := line[7] == '0'
	r.close, r.announced = http10, http10
	cl, chunked, te := int64(-1), false, false
	for {
		line, err := readLine(br, budget)
		if err != nil {
			return 0, false, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: part of a header we do not read
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.IndexByte(line[:colon], ' ') >= 0 || bytes.IndexByte(line[:colon], '\t') >= 0 {
			return 0, false, protocolErr("malformed header line %q", clip(line, 40))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || cl >= 0 && n != cl {
				return 0, false, protocolErr("bad Content-Length %q", clip(value, 40))
			}
			cl = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = true
			chunked = bytes.HasSuffix(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Retry-After")):
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
				r.retryAfter = n
			}
		case bytes.EqualFold(name, []byte("X-Varnish")):
			r.varnishIDs = cachestatus.VarnishIDs(value) // the one rule: two decimal ids is a hit
		case bytes.EqualFold(name, []byte(ObjectsHeader)):
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				r.objects = n
			}
		case bytes.EqualFold(name, []byte(PurgeTimeHeader)):
			r.purgedAt = parseStamp(value)
		case bytes.EqualFold(name, []byte("Age")):
			r.age = true
		case bytes.EqualFold(name, []byte("Connection")):
			for rest := value; len(rest) > 0; {
				var t []byte
				t, rest, _ = bytes.Cut(rest, []byte(","))
				t = bytes.TrimSpace(t)
				switch {
				case bytes.EqualFold(t, []byte("close")):
					r.close, r.announced = true, true
				case bytes.EqualFold(t, []byte("keep-alive")) && http10:
					r.close, r.announced = false, false
				}
			}
		}
		if o.keep != nil {
			if k := o.keep(name); k != "" {
				if r.header == nil {
					r.header = http.Header{}
				}
				r.header[k] = append(r.header[k], string(value))
			}
		}
	}
	if te {
		cl = -1
		if !chunked {
			r.close = true // read until the connection closes
		}
	}
	return cl, chunked, nil
}

// readBody consumes the body of the answer whose head was just read. An
// answer's status is known once its head is read: an error in its body is
// a *bodyError that says so.
func readBody(br *bufio.Reader, o *readOpts, r *response, cl int64, chunked bool) error {
	var err error
	switch {
	case o.head || r.status == http.StatusNoContent || r.status == http.StatusNotModified:
		return nil
	case o.skipBody && !o.hash:
		r.close = true
		return nil
	case chunked:
		err = readChunked(br, o, r)
	case cl == 0:
		return nil
	case cl > 0:
		if cl > bodyLimit(o) {
			r.close, r.cut = true, true
			cl = keepBody
		}
		err = consume(br, o, r, cl, false)
	default:
		// No length: the body ends when the connection does, which may be
		// never. A body not wanted is not waited for; one wanted (to
		// explain a failure) is what came with the head.
		r.close = true
		if o.hash {
			// To compare it, the whole body: until the connection ends
			// (within the attempt's timeout), up to maxHashBody.
			err = consume(br, o, r, maxHashBody, true)
			break
		}
		if o.wantBody != nil && !o.wantBody(r.status) {
			return nil
		}
		err = consume(br, o, r, int64(br.Buffered()), true)
	}
	if err != nil && !errors.Is(err, errProtocol) {
		return &bodyError{status: r.status, err: err}
	}
	return err
}

// bodyLimit is how much of a body is read: enough to keep the connection,
// or, to hash it, to compare it.
func bodyLimit(o *readOpts) int64 {
	if o.hash {
		return maxHashBody
	}
	return maxDrain
}

// bodyError is an answer whose head was read and whose body was not, in
// full: the instance did answer, with that status.
type bodyError struct {
	status int
	err    error
}

func (e *bodyError) Error() string {
	what := "was cut short (the connection closed)"
	if isTimeout(e.err) {
		what = "never ended (it did not arrive in full within the timeout)"
	}
	return strings.TrimSpace(fmt.Sprintf("answered %d %s", e.status, http.StatusText(e.status))) + ", but its body " + what
}

func (e *bodyError) Unwrap() error { return e.err }

// consume reads n body bytes (or up to n, until EOF, when eofOK), keeping
// the start when asked.
func consume(br *bufio.Reader, o *readOpts, r *response, n int64, eofOK bool) error {
	for n > 0 {
		chunk, err := br.Peek(int(min(n, int64(br.Size()))))
		if len(chunk) == 0 && err != nil {
			if eofOK && errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("body cut short: %w", eofToUnexpected(err))
		}
		if o.keepBody && len(r.body) < keepBody {
			r.body = append(r.body, chunk[:min(len(chunk), keepBody-len(r.body))]...)
		}
		if o.hash && !r.cut {
			_, _ = r.sum.Write(chunk)
			r.hashed += int64(len(chunk))
		}
		_, _ = br.Discard(len(chunk))
		n -= int64(len(chunk))
	}
	if eofOK && o.hash {
		r.cut = true // the limit came before the end
	}
	return nil
}

func readChunked(br *bufio.Reader, o *readOpts, r *response) error {
	var total int64
	budget := maxHeaderBytes
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return eofToUnexpected(err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return protocolErr("bad chunk size %q", clip(line, 20))
		}
		if size == 0 {
			break
		}
		total += size
		if total > bodyLimit(o) {
			r.close, r.cut = true, true
			return nil
		}
		if err := consume(br, o, r, size, false); err != nil {
			return err
		}
		if line, err := readLine(br, &budget); err != nil || len(line) != 0 {
			return protocolErr("chunk not followed by CRLF")
		}
	}
	for { // trailers
		line, err := readLine(br, &budget)
		if err != nil {
			return eofToUnexpected(err)
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// readLine reads a line without its CRLF (or LF), counting it against the
// budget. A line longer than the reader's buffer is cut: the rest is read
// and dropped.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*budget -= len(line)
	if errors.Is(err, bufio.ErrBufferFull) {
		// Keep the start (where a header's name is); drop the rest.
		first := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if *budget < 0 {
				return nil, protocolErr("headers larger than %d KiB", maxHeaderBytes>>10)
			}
			line, err = br.ReadSlice('\n')
			*budget -= len(line)
		}
		line = first
	}
	if *budget < 0 {
		return nil, protocolErr("headers larger than %d KiB", maxHeaderBytes>>10)
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func eofToUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// headerSet returns a keep function for the given canonical names.
func headerSet(names ...string) func([]byte) string {
	return func(name []byte) string {
		for _, n := range names {
			if len(n) == len(name) && bytes.EqualFold(name, []byte(n)) {
				return n
			}
		}
		return ""
	}
}
