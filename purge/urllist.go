package purge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// URLList is a list of URLs ready to be sent, kept compactly: each distinct
// scheme and host once, each request target in shared blocks, and 8
// bytes per URL besides. A million URLs of a typical length take about 40
// MB this way, against more than 500 as strings, parsed URLs and request
// lines; ReadURLs streams a file into one without holding its lines.
//
// The zero value is an empty list. Add URLs with Add, AddRaw or Append
// before it is given to a job; a job only reads it, so one list can serve
// a Plan and a Run, or several jobs at once.
type URLList struct {
	hosts  []urlHost
	hostIx map[urlHost]uint32
	runs   []hostRun // URLs by host: ranges of URL indexes, in order
	blocks [][]byte  // request targets, back to back
	refs   []uint64  // per URL: block<<36 | offset<<16 | length
}

// urlHost is what URLs of one scheme and host share.
type urlHost struct {
	scheme, host, hostname, port string
}

// hostRun says that the URLs from start on (to the next run) have host.
type hostRun struct {
	start, host uint32
}

const (
	// MaxTargetBytes bounds a URL's path and query: no cache takes a
	// request line that long (Varnish's http_req_size is 32 KiB by
	// default, nginx's header buffers 8 KiB).
	MaxTargetBytes  = 64<<10 - 1
	blockBytes      = 1 << 20
	firstBlockBytes = 4 << 10
)

// Len is the number of URLs.
func (l *URLList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.refs)
}

// At returns URL i (0 <= i < Len). It allocates nothing: the URL's strings
// share the list's memory.
func (l *URLList) At(i int) URL {
	h := &l.hosts[l.hostOf(i)]
	return URL{Scheme: h.scheme, Host: h.host, Hostname: h.hostname, Port: h.port, Target: l.target(i)}
}

// All iterates over the URLs and their indexes.
func (l *URLList) All() iter.Seq2[int, URL] {
	return func(yield func(int, URL) bool) {
		for i := range l.Len() {
			if !yield(i, l.At(i)) {
				return
			}
		}
	}
}

// Strings returns every URL as a string (URL.String), for small lists.
func (l *URLList) Strings() []string {
	out := make([]string, l.Len())
	for i, u := range l.All() {
		out[i] = u.String()
	}
	return out
}

// Add parses s as ParseURL does (as a browser would request it) and adds it.
func (l *URLList) Add(s string) error {
	u, err := ParseURL(s)
	if err != nil {
		return err
	}
	return l.Append(u)
}

// AddRaw parses s as ParseRawURL does (as written) and adds it.
func (l *URLList) AddRaw(s string) error {
	u, err := ParseRawURL(s)
	if err != nil {
		return err
	}
	return l.Append(u)
}

// Append adds a parsed URL, copying it into the list. Its Target must be a
// request target (as ParseURL and ParseRawURL give) of at most
// MaxTargetBytes.
func (l *URLList) Append(u URL) error {
	if len(u.Target) > MaxTargetBytes {
		return fmt.Errorf("url %s%s...: path and query longer than %d KiB; no cache takes a request that long", u.Scheme+"://"+u.Host, u.Target[:40], (MaxTargetBytes+1)>>10)
	}
	if u.Target == "" || u.Host == "" || u.Scheme == "" {
		return fmt.Errorf("url %q: give a URL as ParseURL returns it", u.String())
	}
	key := urlHost{u.Scheme, u.Host, u.Hostname, u.Port}
	h, ok := l.hostIx[key]
	if !ok {
		if l.hostIx == nil {
			l.hostIx = map[urlHost]uint32{}
		}
		h = uint32(len(l.hosts))
		key = urlHost{strings.Clone(u.Scheme), strings.Clone(u.Host), strings.Clone(u.Hostname), strings.Clone(u.Port)}
		l.hosts = append(l.hosts, key)
		l.hostIx[key] = h
	}
	n := uint32(len(l.refs))
	if len(l.runs) == 0 || l.runs[len(l.runs)-1].host != h {
		l.runs = append(l.runs, hostRun{start: n, host: h})
	}
	b := len(l.blocks) - 1
	if b < 0 || len(l.blocks[b])+len(u.Target) > cap(l.blocks[b]) {
		// Each block twice the last, up to blockBytes: a job of a few URLs
		// does not pay for a million.
		size := firstBlockBytes
		if b >= 0 {
			size = min(blockBytes, 2*cap(l.blocks[b]))
		}
		l.blocks = append(l.blocks, make([]byte, 0, max(size, len(u.Target))))
		b++
	}
	off := len(l.blocks[b])
	// Bytes once written are never changed, so strings may share them
	// (see target).
	l.blocks[b] = append(l.blocks[b], u.Target...)
	l.refs = append(l.refs, uint64(b)<<36|uint64(off)<<16|uint64(len(u.Target)))
	return nil
}

// target is URL i's request target, sharing the list's memory: the bytes of
// a block are written once and never changed, so the string stays valid and
// constant (as strings.Builder does with its buffer).
func (l *URLList) target(i int) string {
	r := l.refs[i]
	b, off, n := r>>36, (r>>16)&(1<<20-1), r&(1<<16-1)
	return unsafe.String(&l.blocks[b][off], int(n))
}

// hostOf is the index of URL i's host.
func (l *URLList) hostOf(i int) uint32 {
	if len(l.runs) == 1 {
		return 0
	}
	k, _ := slices.BinarySearchFunc(l.runs, uint32(i), func(r hostRun, i uint32) int {
		switch {
		case r.start < i:
			return -1
		case r.start > i:
			return 1
		}
		return 0
	})
	if k == len(l.runs) || l.runs[k].start > uint32(i) {
		k--
	}
	return l.runs[k].host
}

// appendList adds every URL of m.
func (l *URLList) appendList(m *URLList) {
	for _, u := range m.All() {
		_ = l.Append(u) // m's URLs passed Append once
	}
}

// maxLineBytes bounds one line of a URL file.
const maxLineBytes = MaxTargetBytes + 1024

// ReadURLs reads one URL a line from r into a URLList, each parsed as
// ParseURL does (ParseRawURL with raw). Blank lines and lines whose first
// non-blank character is '#' are skipped. Lines are read one at a time and
// only the parsed URL is kept, so a file of a million URLs costs the list,
// not the file. The error names the source and the line of the first line
// that is not a URL: invalid UTF-8, a line longer than 64 KiB, or a URL
// that does not parse.
func ReadURLs(r io.Reader, source string, raw bool) (*URLList, error) {
	l := &URLList{}
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for line := 1; ; line++ {
		b, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it up to the limit.
			long = append(long[:0], b...)
			for errors.Is(rerr, bufio.ErrBufferFull) && len(long) <= maxLineBytes {
				b, rerr = br.ReadSlice('\n')
				long = append(long, b...)
			}
			if len(long) > maxLineBytes {
				return nil, fmt.Errorf("%s line %d: longer than %d KiB; give one URL a line", source, line, maxLineBytes>>10)
			}
			b = long
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", source, rerr)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 && t[0] != '#' {
			if !utf8.Valid(t) {
				return nil, fmt.Errorf("%s line %d: not valid UTF-8 (save the file as UTF-8; percent-encode other bytes)", source, line)
			}
			// The line is only parsed here: Append copies what it keeps.
			s := unsafe.String(&t[0], len(t))
			var err error
			if _, ok := canonicalAlready(s); ok || !raw {
				err = l.Add(s)
			} else {
				err = l.AddRaw(s)
			}
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", source, line, err)
			}
		}
		if rerr != nil { // io.EOF
			break
		}
	}
	return l, nil
}
