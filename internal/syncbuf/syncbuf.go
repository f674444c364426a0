// Package syncbuf is a bytes.Buffer safe for one writer and many readers
// at once: a process's output, collected while it runs and read by
// whoever reports on it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written, up to Limit bytes when Limit is set
// (the start is kept: it usually says why a process failed).
type Buffer struct {
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len()+len(p) > s.Limit {
		s.b.Write(p[:max(0, s.Limit-s.b.Len())])
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
