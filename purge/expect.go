package purge

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Expect is what a verify step wants every instance to say about a URL.
type Expect string

// The expectations.
const (
	// ExpectPurged: no instance serves a copy older than the purge. A miss
	// passes, and so does a hit on a copy stored after the purge began
	// (live traffic refilled the cache): its Age is at most the time since
	// the purge began, rounded up, plus one second for Age's whole-second
	// granularity. This is what a purge's --verify checks by default.
	ExpectPurged Expect = "purged"
	ExpectHit    Expect = "hit"   // served from cache: fresh or stale
	ExpectFresh  Expect = "fresh" // served from cache and not stale
	ExpectStale  Expect = "stale" // served from cache past its TTL
	ExpectMiss   Expect = "miss"  // fetched from the origin (strict: any refill fails)
	ExpectAny    Expect = "any"   // any answer but a 5xx
)

// ageMargin allows for Age counting whole seconds.
const ageMargin = time.Second

// ParseExpect accepts purged, hit, fresh, stale, miss or any.
func ParseExpect(s string) (Expect, error) {
	switch e := Expect(strings.ToLower(strings.TrimSpace(s))); e {
	case ExpectPurged, ExpectHit, ExpectFresh, ExpectStale, ExpectMiss, ExpectAny:
		return e, nil
	}
	return "", fmt.Errorf("expect %q: use purged, hit, fresh, stale, miss or any", s)
}

// Match says whether a class satisfies the expectation, for every
// expectation but ExpectPurged, which also needs the copy's age.
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

// match says whether st satisfies e, since the purge began this long ago,
// and whether the instance was refilled after the purge.
func (e Expect) match(st cachestatus.Status, sincePurge time.Duration) (ok, refilled bool) {
	if e != ExpectPurged {
		return e.Match(st.Class), false
	}
	switch {
	case st.Class == cachestatus.Miss || st.Class == cachestatus.Bypass:
		return true, false
	case st.Class.IsHit() && st.Age >= 0:
		limit := int(math.Ceil((sincePurge + ageMargin).Seconds()))
		if st.Age <= limit {
			return true, true
		}
	}
	return false, false
}
