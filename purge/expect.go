package purge

import (
	"fmt"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Expect is what a verify step wants every instance to say about a URL.
type Expect string

// The expectations.
const (
	// ExpectPurged: no instance serves a copy older than the purge. A miss
	// passes, and so does a hit on a copy made after the purge (live traffic
	// refilled the cache). Which copies those are is told, best first, by
	// the content (Job.Origin: a copy equal to the origin's passes whatever
	// its age), by the instance's own clock (FetchTimeHeader against
	// PurgeTimeHeader: a copy whose fetch began before the purge is old,
	// whatever its Age), or by Age in whole seconds against this clock (a
	// copy stored within a second of the purge cannot be told, and passes
	// only with Job.AcceptUncertain). After a soft purge, an instance may
	// serve the old copy as stale once, while it fetches a fresh one, which
	// the next answers must then be. This is what a purge's --verify checks
	// by default.
	ExpectPurged Expect = "purged"
	// ExpectCurrent: every instance serves what the origin serves now
	// (needs Job.Origin).
	ExpectCurrent Expect = "current"
	ExpectHit     Expect = "hit"   // served from cache: fresh or stale
	ExpectFresh   Expect = "fresh" // served from cache and not stale
	ExpectStale   Expect = "stale" // served from cache past its TTL
	ExpectMiss    Expect = "miss"  // fetched from the origin (strict: any refill fails)
	ExpectAny     Expect = "any"   // any answer but a 5xx
)

// ParseExpect accepts purged, current, hit, fresh, stale, miss or any.
func ParseExpect(s string) (Expect, error) {
	switch e := Expect(strings.ToLower(strings.TrimSpace(s))); e {
	case ExpectPurged, ExpectCurrent, ExpectHit, ExpectFresh, ExpectStale, ExpectMiss, ExpectAny:
		return e, nil
	}
	return "", fmt.Errorf("expect %q: use purged, current, hit, fresh, stale, miss or any", s)
}

// Match says whether a class satisfies the expectation, for every
// expectation but ExpectPurged and ExpectCurrent, which need more than the
// class. ExpectFresh and ExpectStale also need evidence that tells fresh
// from stale (see cachestatus.Status.StaleUnknown).
func (e Expect) Match(c cachestatus.Class) bool {
	switch e {
	case ExpectHit:
		return c.IsHit()
	case ExpectFresh:
		return c == cachestatus.Hit
	case ExpectStale:
		return c == cachestatus.Stale
	case ExpectMiss:
		return c == cachestatus.Miss
	case ExpectAny:
		return true
	}
	return false
}
