// Package cachestatus reads what a cache did with a response from the
// response's own headers, and reduces it to one Class: hit, stale, miss,
// bypass, synthetic or unknown.
//
// Two kinds of evidence are read: the headers a cache (or its configuration)
// writes to say what it did, and what Varnish itself always adds. Read
// combines them; Headers lists every header it consults.
//
// # Varnish's own evidence
//
// X-Varnish is added by Varnish to every response it delivers. A hit carries
// two ids, the request's and the one of the transaction that created the
// object; a miss, a pass and a synthetic response carry one:
//
//	X-Varnish: 32770 3    -> hit (fresh or stale: X-Varnish cannot tell)
//	X-Varnish: 32770      -> miss (or pass, or synthetic)
//
// An origin that is itself a Varnish sends its own X-Varnish, which is stored
// with the object; this cache appends its line after it, so the LAST value is
// read. A value that is not one or two decimal ids is ignored.
//
// Age is the time in seconds since the copy was made by a cache. It is weaker
// evidence: Varnish passes on the origin's Age on a miss (an origin that is
// itself a cache sends Age > 0), and a hit served in the second its object was
// stored says "Age: 0". It is used only when nothing better exists:
//
//	Age: 42               -> hit
//	Age: 0                -> unknown (a miss, or a hit less than a second old)
//
// Age 0 alone is not read as a miss: a copy stored in the second before a
// purge that failed would then pass for purged. Status.Age is always
// reported, so a caller that knows when it purged can compare the two.
//
// # Cache headers, in the order they are consulted
//
// The header Options.CacheHeader names, if any; then Cache-Status, then
// X-Cache (with X-Cache-Hits), then X-Cache-Status, then Cf-Cache-Status, then
// X-Magento-Cache-Debug (with Grace).
//
// Cache-Status as RFC 9211 defines it is an RFC 8941 List whose members are
// caches, the last one nearest the client. Each member is a cache name (token
// or string) with parameters hit, fwd, fwd-status, ttl, stored, collapsed,
// key and detail; unknown parameters are kept. This cache's member is
// classified: the last one, or the one Options.CacheName names (see below).
//
//	ExampleCache; hit                  -> hit
//	ExampleCache; hit; ttl=-412        -> stale (served past its TTL)
//	ExampleCache; hit; detail=grace    -> stale (a detail saying stale or grace)
//	ExampleCache; fwd=stale            -> miss (its copy was stale: it went to the origin)
//	ExampleCache; fwd=uri-miss; stored -> miss (also miss, vary-miss, request, partial)
//	ExampleCache; fwd=bypass           -> bypass (also method)
//	ExampleCache; detail=synth         -> synthetic (a detail saying synth)
//	ExampleCache                       -> unknown (neither hit nor fwd)
//
// Cache-Status in the semicolon form thechangelog/pipely's VCL sends, which is
// not a valid structured field, is read as flags and key=value pairs:
//
//	region=iad; origin=app,app.origin.local; ttl=10.000; grace=86400.000; storage=memory; hit; hits=3
//
//	synth                       -> synthetic
//	bypass, pass or pipe        -> bypass
//	hit; stale                  -> stale (also hit with a negative ttl)
//	hit                         -> hit
//	stale                       -> stale
//	miss                        -> miss
//	no flag, hits=N with N > 0  -> hit
//	no flag, hits=0             -> miss (hits=0 is never a hit)
//
// X-Cache, X-Cache-Status and Cf-Cache-Status are read alike, in any case.
// With several layers ("HIT, MISS") the LAST value is the cache nearest the
// client. Its first word decides, and a hit followed by "graced" or "stale"
// is stale: a common Varnish configuration writes X-Cache as
// hit|miss|pass|synth|pipe, then "graced" when served in grace, then
// cached|uncacheable. X-Cache-Hits is kept as Hits when X-Cache decides.
//
//	HIT, TCP_HIT, TCP_REFRESH_HIT, Hit from cloudfront, hit cached  -> hit
//	REVALIDATED, TCP_REFRESH_UNMODIFIED      -> hit (the stored copy, confirmed by the origin)
//	hit graced cached, HIT-STALE             -> stale (served in grace)
//	STALE, UPDATING                          -> stale
//	MISS, TCP_MISS, Miss from cloudfront     -> miss
//	miss cached, miss uncacheable            -> miss
//	EXPIRED                                  -> miss (the copy had expired: fetched again)
//	HITMISS, hit-for-miss                    -> miss
//	PASS, BYPASS, DYNAMIC                    -> bypass
//	pass uncacheable, pipe uncacheable       -> bypass
//	HITPASS, hit-for-pass                    -> bypass
//	SYNTH, synth synth                       -> synthetic
//	NONE                                     -> synthetic (answered by the edge itself)
//	UNCACHEABLE                              -> bypass
//	anything else                            -> unknown
//
// A header an application names for itself (Options.CacheHeader, e.g.
// X-My-Cache) is read the same way: its value says HIT, MISS, PASS,
// UNCACHEABLE, STALE, EXPIRED... in any case.
//
//	X-My-Cache: HIT          -> hit
//	X-My-Cache: stale        -> stale
//	X-My-Cache: uncacheable  -> bypass
//
// Magento 2's VCL removes X-Varnish and Age and says what it did in
// X-Magento-Cache-Debug, with, on a hit, a Grace header that is "none" unless
// the copy was served in grace:
//
//	X-Magento-Cache-Debug: HIT, Grace: none                     -> hit
//	X-Magento-Cache-Debug: HIT, Grace: normal (healthy server)  -> stale
//	X-Magento-Cache-Debug: MISS                                 -> miss
//	X-Magento-Cache-Debug: UNCACHEABLE                          -> bypass
//
// # How the evidence combines
//
// The headers above are consulted in order, and the first one that can be
// read and that X-Varnish does not contradict decides. X-Varnish decides hit
// or not hit; a header that agrees refines the class (hit or stale; miss,
// bypass or synthetic). A header that contradicts it (says miss, bypass or
// synthetic on a two-id hit, or hit or stale on a one-id response) is not this
// cache's: it is ignored, and Note says so. When no header decides, X-Varnish
// alone decides (two ids: hit; one id: miss), then Age alone (> 0: hit), and
// else the class is Unknown. Without X-Varnish, the first readable header
// decides, whatever Age says.
//
// X-Varnish and Age say whether a copy came from the cache, not whether it
// was fresh: a hit read from them alone (no cache header decided) has
// StaleUnknown set, and says neither fresh nor stale.
//
//	X-Varnish: 32770 3    -> hit, StaleUnknown (fresh or stale)
//	Age: 42               -> hit, StaleUnknown
//
// VarnishIDs is the one place the rule "two ids is a hit" is written: it
// counts the ids of the last value of an X-Varnish header (0 when that value
// is not one or two decimal ids), for this package and for anyone reading
// X-Varnish elsewhere.
//
// A header the origin sent is stored with the object when the configuration
// sets no header of its own, and is delivered again on every hit: a
// "Cache-Status: CloudFront; fwd=miss" or "X-Cache: Miss from cloudfront" on a
// response with "X-Varnish: 5 3" predates this cache and is ignored (hit). Such
// a header cannot be told from this cache's when it agrees with X-Varnish, nor
// when X-Varnish is absent: keep X-Varnish in responses, or name this cache.
//
// # This cache's name
//
// Options.CacheName names this cache's member of an RFC 9211 list (the name
// its configuration writes, compared without regard to case). The LAST member
// with that name is this cache's and is classified; a list without such a
// member belongs to other caches and does not decide. X-Varnish still wins
// over the named member when they contradict (Note says so). Without
// CacheName, the last member is taken and X-Varnish tells whether it is this
// cache's.
//
// A header that none of these rules understands is classified Unknown and
// kept in Raw when nothing else decides: reading never fails and never
// panics.
package cachestatus

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Class is what the cache did, reduced to what verification needs.
type Class string

// The classes.
const (
	Hit       Class = "hit"       // served from cache, fresh
	Stale     Class = "stale"     // served from cache past its TTL (grace)
	Miss      Class = "miss"      // fetched from the origin
	Bypass    Class = "bypass"    // not cacheable or deliberately not cached (pass)
	Synthetic Class = "synthetic" // made up by the cache itself (errors, redirects)
	Unknown   Class = "unknown"   // no evidence, or none these rules understand
)

// IsHit says whether the response came from the cache (fresh or stale).
func (c Class) IsHit() bool { return c == Hit || c == Stale }

// Entry is one member of an RFC 9211 Cache-Status list.
type Entry struct {
	Cache     string            `json:"cache"`
	Hit       bool              `json:"hit,omitempty"`
	Fwd       string            `json:"fwd,omitempty"`
	FwdStatus int               `json:"fwd_status,omitempty"`
	TTL       *float64          `json:"ttl,omitempty"`
	Stored    bool              `json:"stored,omitempty"`
	Collapsed bool              `json:"collapsed,omitempty"`
	Key       string            `json:"key,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	Params    map[string]string `json:"params,omitempty"` // unknown parameters, as serialized
}

// Status is the reading of one response's headers.
type Status struct {
	Class Class `json:"class"`
	// Source names the header and form the class came from: "cache-status",
	// "cache-status (pipely)", "x-cache", "x-cache-status",
	// "cf-cache-status", "x-varnish" or "age". When the class is Unknown it
	// names the first cache header present (which could not decide), or is
	// "" when there was none.
	Source string `json:"source,omitempty"`
	// Raw is the value of the Source header as received.
	Raw string `json:"raw,omitempty"`
	// Entries are the members of Cache-Status when it is an RFC 9211 list,
	// whether or not it decided.
	Entries []Entry `json:"entries,omitempty"`
	// TTL is the remaining freshness in seconds when the deciding header
	// said it.
	TTL *float64 `json:"ttl,omitempty"`
	// Hits is how often the object was served from cache, when the deciding
	// header said it (pipely's hits=, X-Cache-Hits); -1 when unknown.
	Hits int `json:"hits"`
	// Age is the Age header in whole seconds; -1 when absent or unreadable
	// (so 0 stays distinguishable, and is always written).
	Age int `json:"age"`
	// VarnishIDs is how many ids X-Varnish carries: 2 on a hit, 1 on a miss,
	// pass or synthetic response, 0 when the header is absent or unreadable
	// (then omitted from JSON).
	VarnishIDs int `json:"varnish_ids,omitempty"`
	// StaleUnknown says the class is Hit but the evidence cannot tell a
	// fresh copy from a stale one: it came from X-Varnish or Age alone (or a
	// header that says hit and nothing more about grace).
	StaleUnknown bool `json:"stale_unknown,omitempty"`
	// Note says why a header was ignored, or what decided when no cache
	// header did; "" when the first header consulted decided unopposed.
	Note string `json:"note,omitempty"`
}

// Options say which cache is being read. The zero value reads any response.
type Options struct {
	// CacheName is this cache's member name in an RFC 9211 Cache-Status list,
	// e.g. the Varnish instance's name as its configuration writes it. When
	// set, the last member with that name decides and a list without one does
	// not. Empty: the last member is taken, and Varnish's own evidence
	// (X-Varnish) tells whether it is this cache's. The pipely form names no
	// cache and is read whatever CacheName says.
	CacheName string
	// CacheHeader names a header an application writes to say what its cache
	// did, e.g. X-My-Cache: HIT|MISS|PASS|UNCACHEABLE|STALE|EXPIRED (any
	// case). It is consulted before every other header. Empty: none.
	CacheHeader string
}

// Headers returns the response header names Read consults with these
// options, in canonical form: CacheHeader first, then those of the package
// function Headers.
func (o Options) Headers() []string {
	hs := Headers()
	if o.CacheHeader == "" {
		return hs
	}
	k := http.CanonicalHeaderKey(o.CacheHeader)
	for _, h := range hs {
		if h == k {
			return hs
		}
	}
	return append([]string{k}, hs...)
}

// Headers returns the response header names Read consults, in canonical
// form. A response reduced to these headers reads the same. The slice is new
// at each call.
func Headers() []string {
	return []string{"Cache-Status", "X-Cache", "X-Cache-Hits", "X-Cache-Status", "Cf-Cache-Status",
		"X-Magento-Cache-Debug", "Grace", "X-Varnish", "Age"}
}

// FromHeader reads h with the zero Options.
func FromHeader(h http.Header) Status { return Read(h, Options{}) }

// VarnishHit says whether X-Varnish carries two ids: Varnish served the
// response from its cache. A PURGE answered this way was not handled as a
// purge but looked up like any request.
func VarnishHit(h http.Header) bool {
	n, _ := varnishIDs(h)
	return n == 2
}

// VarnishIDs counts the ids of the last value of an X-Varnish header (several
// lines joined with commas): 2 when Varnish served the response from its
// cache (the request's id and the one of the transaction that stored the
// object), 1 on a miss, pass or synthetic response, and 0 when that value is
// not one or two decimal ids. An origin that is itself a Varnish sends its
// own X-Varnish, stored with the object; this cache's line comes after it.
func VarnishIDs[T string | []byte](v T) int {
	last := len(v)
	i := last - 1
	for i >= 0 && v[i] != ',' {
		i--
	}
	n, inID := 0, false
	for j := i + 1; j < last; j++ {
		switch c := v[j]; {
		case c >= '0' && c <= '9':
			if !inID {
				n++
				inID = true
			}
		case c == ' ' || c == '\t':
			inID = false
		default:
			return 0
		}
	}
	if n > 2 {
		return 0
	}
	return n
}

// reading is one cache header's reading, before it is weighed.
type reading struct {
	header string // as written in notes: "Cache-Status", "X-Cache", ...
	st     Status
	skip   string // why it cannot decide, when its class is Unknown
	named  bool   // the member was chosen by Options.CacheName
}

// Read reads what the cache did from h; see the package documentation for
// the rules.
func Read(h http.Header, o Options) Status {
	ids, xv := varnishIDs(h)
	age := readAge(h)
	var notes []string
	if ids == 0 && xv != "" {
		notes = append(notes, fmt.Sprintf("X-Varnish %q unreadable, ignored", xv))
	}
	rs := readings(h, o)
	done := func(st Status, note string) Status {
		if note != "" {
			notes = append(notes, note)
		}
		st.Age, st.VarnishIDs, st.Note = age, ids, strings.Join(notes, "; ")
		if len(rs) > 0 && rs[0].header == "Cache-Status" {
			st.Entries = rs[0].st.Entries
		}
		return st
	}
	for _, r := range rs {
		if why := objection(r, ids, o.CacheName); why != "" {
			notes = append(notes, why)
			continue
		}
		if ids == 0 && r.st.Class == Miss && age > 0 {
			return done(r.st, fmt.Sprintf("Age %d on a miss: the origin is itself a cache, or the header was stored with the object", age))
		}
		return done(r.st, "")
	}
	switch {
	case ids == 2:
		return done(Status{Class: Hit, Source: "x-varnish", Raw: xv, Hits: -1, StaleUnknown: true}, "X-Varnish has two ids (the second created the object): hit")
	case ids == 1:
		return done(Status{Class: Miss, Source: "x-varnish", Raw: xv, Hits: -1}, "X-Varnish has one id: a miss, pass or synthetic response, read as miss")
	case age > 0:
		return done(Status{Class: Hit, Source: "age", Raw: h.Get("Age"), Hits: -1, StaleUnknown: true},
			fmt.Sprintf("only Age: %d s, so the copy came from a cache (an origin that is itself a cache sends Age too)", age))
	}
	st := Status{Class: Unknown, Hits: -1}
	if len(rs) > 0 { // name what was there, though it could not decide
		st.Source, st.Raw = rs[0].st.Source, rs[0].st.Raw
		if st.Source == "" {
			st.Source = strings.ToLower(rs[0].header)
		}
	}
	if age == 0 {
		return done(st, "only Age: 0, which a miss and a hit less than a second old both carry: unknown")
	}
	return done(st, "")
}

// readings reads each cache header present, in the order they are consulted.
func readings(h http.Header, o Options) []reading {
	var rs []reading
	if k := o.CacheHeader; k != "" && !builtIn(k) {
		if v := joined(h, k); v != "" {
			k = http.CanonicalHeaderKey(k)
			rs = append(rs, reading{header: k, st: parseWords(v, strings.ToLower(k))})
		}
	}
	if v := joined(h, "Cache-Status"); v != "" {
		st, named, skip := parseCacheStatus(v, o.CacheName)
		rs = append(rs, reading{header: "Cache-Status", st: st, skip: skip, named: named})
	}
	if v := joined(h, "X-Cache"); v != "" {
		rs = append(rs, reading{header: "X-Cache", st: ParseXCache(v, joined(h, "X-Cache-Hits"))})
	}
	if v := joined(h, "X-Cache-Status"); v != "" {
		rs = append(rs, reading{header: "X-Cache-Status", st: parseWords(v, "x-cache-status")})
	}
	if v := joined(h, "Cf-Cache-Status"); v != "" {
		rs = append(rs, reading{header: "Cf-Cache-Status", st: parseWords(v, "cf-cache-status")})
	}
	if v := joined(h, "X-Magento-Cache-Debug"); v != "" {
		st := parseWords(v, "x-magento-cache-debug")
		if st.Class == Hit {
			// Magento's VCL says on a hit whether it served it in grace:
			// "none", or why it did ("normal (healthy server)").
			switch g := strings.TrimSpace(h.Get("Grace")); {
			case g == "":
				st.StaleUnknown = true
			case !strings.EqualFold(g, "none"):
				st.Class = Stale
			}
		}
		rs = append(rs, reading{header: "X-Magento-Cache-Debug", st: st})
	}
	return rs
}

// builtIn says whether k is one of the headers Read consults anyway.
func builtIn(k string) bool {
	for _, h := range Headers() {
		if strings.EqualFold(h, k) {
			return true
		}
	}
	return false
}

// objection says why r cannot decide given X-Varnish's ids, or "" when it
// can: it is unreadable, or it contradicts Varnish's own evidence.
func objection(r reading, ids int, name string) string {
	c := r.st.Class
	who, verdict := r.header, "the header predates this cache (stored with the object), ignored"
	if ids == 1 {
		verdict = "the header is not this cache's (sent by the origin), ignored"
	}
	if r.named {
		who, verdict = fmt.Sprintf("%s member %q", r.header, name), "X-Varnish wins"
	}
	switch {
	case c == Unknown && r.skip != "":
		return r.skip
	case c == Unknown:
		return fmt.Sprintf("%s %q not understood", r.header, r.st.Raw)
	case ids == 2 && !c.IsHit():
		return fmt.Sprintf("%s says %s but X-Varnish has two ids (a hit): %s", who, c, verdict)
	case ids == 1 && c.IsHit():
		return fmt.Sprintf("%s says %s but X-Varnish has one id (a miss, pass or synthetic response): %s", who, c, verdict)
	}
	return ""
}

// joined is every line of header k as one list, or "" when blank.
func joined(h http.Header, k string) string {
	v := strings.Join(h.Values(k), ", ")
	if strings.TrimSpace(v) == "" {
		return ""
	}
	return v
}

// varnishIDs counts the ids of the last X-Varnish value (this cache's: an
// origin's X-Varnish is stored with the object and delivered before it), and
// returns it. It returns 0 and the whole header when that value is not one or
// two decimal ids.
func varnishIDs(h http.Header) (int, string) {
	v := joined(h, "X-Varnish")
	if v == "" {
		return 0, ""
	}
	n := VarnishIDs(v)
	if n == 0 {
		return 0, v
	}
	return n, strings.TrimSpace(v[strings.LastIndexByte(v, ',')+1:])
}

// readAge reads Age in whole seconds (the first value when there are
// several), capped at math.MaxInt32; -1 when absent or unreadable.
func readAge(h http.Header) int {
	v := h.Get("Age")
	v, _, _ = strings.Cut(v, ",")
	v = strings.TrimSpace(v)
	if !digits(v) {
		return -1
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(n)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Parse reads a Cache-Status value: RFC 9211 when it parses as a structured
// field list (its last member is classified), else the pipely form.
func Parse(v string) Status {
	st, _, _ := parseCacheStatus(v, "")
	return st
}

// parseCacheStatus reads a Cache-Status value, classifying the last member,
// or the last one named name when name is set. named says the member was
// chosen by name; skip says why the list cannot decide.
func parseCacheStatus(v, name string) (st Status, named bool, skip string) {
	st = Status{Class: Unknown, Raw: v, Hits: -1, Age: -1}
	list, err := httpsfv.UnmarshalList([]string{v})
	if err != nil || len(list) == 0 || looksLikePipely(list) {
		return parsePipely(v, st), false, ""
	}
	st.Source = "cache-status"
	for _, m := range list {
		st.Entries = append(st.Entries, entryOf(m))
	}
	i := len(st.Entries) - 1
	if name != "" {
		for i = len(st.Entries) - 1; i >= 0 && !strings.EqualFold(st.Entries[i].Cache, name); i-- {
		}
		if i < 0 {
			return st, false, fmt.Sprintf("Cache-Status has no member named %q: every member is another cache's, ignored", name)
		}
	}
	e := st.Entries[i]
	st.TTL = e.TTL
	st.Class = classifyEntry(e)
	return st, name != "", ""
}

// looksLikePipely catches pipely values that happen to parse as a list: a
// first member that is one of pipely's flags rather than a cache name.
func looksLikePipely(l httpsfv.List) bool {
	it, ok := l[0].(httpsfv.Item)
	if !ok {
		return false
	}
	tok, ok := it.Value.(httpsfv.Token)
	if !ok {
		return false
	}
	switch strings.ToLower(string(tok)) {
	case "hit", "miss", "stale", "synth", "pass", "bypass":
		return true
	}
	return false
}

func entryOf(m httpsfv.Member) Entry {
	var e Entry
	var params *httpsfv.Params
	switch it := m.(type) {
	case httpsfv.Item:
		e.Cache = bareString(it.Value)
		params = it.Params
	case httpsfv.InnerList:
		e.Cache = "(inner list)"
		params = it.Params
	}
	if params == nil {
		return e
	}
	for _, k := range params.Names() {
		v, _ := params.Get(k)
		switch k {
		case "hit":
			e.Hit, _ = v.(bool)
		case "fwd":
			e.Fwd = strings.ToLower(bareString(v))
		case "fwd-status":
			if n, ok := v.(int64); ok {
				e.FwdStatus = int(n)
			}
		case "ttl":
			if f, ok := number(v); ok {
				e.TTL = &f
			}
		case "stored":
			e.Stored, _ = v.(bool)
		case "collapsed":
			e.Collapsed, _ = v.(bool)
		case "key":
			e.Key = bareString(v)
		case "detail":
			e.Detail = bareString(v)
		default:
			if e.Params == nil {
				e.Params = map[string]string{}
			}
			e.Params[k] = bareString(v)
		}
	}
	return e
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func bareString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case httpsfv.Token:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []byte:
		return string(x)
	}
	return ""
}

func classifyEntry(e Entry) Class {
	detail := strings.ToLower(e.Detail)
	if e.Hit {
		if e.TTL != nil && *e.TTL < 0 || strings.Contains(detail, "stale") || strings.Contains(detail, "grace") {
			return Stale
		}
		return Hit
	}
	switch e.Fwd {
	case "bypass", "method":
		return Bypass
	case "uri-miss", "vary-miss", "miss", "request", "partial", "stale":
		// stale: the stored copy was stale, so the cache went to the origin.
		return Miss
	}
	if strings.Contains(detail, "synth") {
		return Synthetic
	}
	return Unknown
}

// parsePipely reads "key=value; flag; ..." as thechangelog/pipely sends it.
func parsePipely(v string, st Status) Status {
	flags := map[string]bool{}
	hits := -1
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, hasVal := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if !hasVal {
			switch k {
			case "hit", "miss", "stale", "synth", "synthetic", "bypass", "pass", "pipe":
				flags[k] = true
			}
			continue
		}
		switch k {
		case "ttl":
			if f, err := strconv.ParseFloat(val, 64); err == nil {
				st.TTL = &f
			}
		case "hits":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				hits = n
			}
		}
	}
	if len(flags) == 0 && hits < 0 && st.TTL == nil {
		return st // nothing recognisable: Unknown
	}
	st.Source, st.Hits = "cache-status (pipely)", hits
	switch {
	case flags["synth"] || flags["synthetic"]:
		st.Class = Synthetic
	case flags["bypass"] || flags["pass"] || flags["pipe"]:
		st.Class = Bypass
	case flags["hit"] && (flags["stale"] || st.TTL != nil && *st.TTL < 0):
		st.Class = Stale
	case flags["hit"]:
		st.Class = Hit
	case flags["stale"]:
		st.Class = Stale
	case flags["miss"]:
		st.Class = Miss
	case hits > 0:
		st.Class = Hit
	case hits == 0:
		st.Class = Miss
	}
	return st
}

// ParseXCache reads X-Cache (and X-Cache-Hits). With several layers
// ("HIT, MISS") the last value is the cache nearest the client.
func ParseXCache(v, hitsHeader string) Status {
	st := parseWords(v, "x-cache")
	if hp := strings.Split(hitsHeader, ","); strings.TrimSpace(hitsHeader) != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(hp[len(hp)-1])); err == nil && n >= 0 {
			st.Hits = n
		}
	}
	return st
}

// parseWords reads an X-Cache style value (X-Cache, X-Cache-Status,
// Cf-Cache-Status): the last comma-separated value, by its first word.
func parseWords(v, source string) Status {
	parts := strings.Split(v, ",")
	return Status{Class: classifyWords(parts[len(parts)-1]), Source: source, Raw: v, Hits: -1, Age: -1}
}

func classifyWords(s string) Class {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TCP_") // squid: TCP_HIT, TCP_REFRESH_HIT
	words := strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '/' || r == ':' || r == '(' || r == ')' || r == ';'
	})
	if len(words) == 0 {
		return Unknown
	}
	w, next := words[0], ""
	if len(words) > 1 {
		next = words[1]
	}
	compact := strings.NewReplacer("-", "", "_", "").Replace(w) // hit-for-pass, HIT_FOR_PASS
	switch {
	case strings.Contains(compact, "HITFORPASS") || strings.Contains(compact, "HITPASS"):
		return Bypass
	case strings.Contains(compact, "HITFORMISS") || strings.Contains(compact, "HITMISS"):
		return Miss
	case strings.Contains(w, "STALE") || strings.Contains(w, "UPDATING"):
		return Stale
	case strings.Contains(w, "EXPIRED"):
		return Miss
	case strings.Contains(w, "REVALIDATED") || strings.Contains(w, "UNMODIFIED"):
		return Hit
	case strings.Contains(w, "HIT"):
		if next == "GRACED" || next == "GRACE" || next == "STALE" {
			return Stale
		}
		return Hit
	case strings.Contains(w, "MISS"):
		return Miss
	case w == "PASS" || w == "BYPASS" || w == "DYNAMIC" || w == "PIPE" || w == "UNCACHEABLE":
		return Bypass
	case strings.HasPrefix(w, "SYNTH") || w == "NONE":
		return Synthetic
	}
	return Unknown
}
