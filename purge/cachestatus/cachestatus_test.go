package cachestatus

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRFC9211Examples(t *testing.T) {
	// The examples of RFC 9211 sections 2 and 3, and the forms our VCL sends.
	for v, want := range map[string]Class{
		"ExampleCache; hit":                           Hit,
		"ExampleCache; hit; ttl=-412":                 Stale,
		"ExampleCache; fwd=uri-miss":                  Miss,
		"ExampleCache; fwd=uri-miss; stored":          Miss,
		"ExampleCache; fwd=vary-miss; fwd-status=200": Miss,
		"ExampleCache; fwd=stale; fwd-status=304":     Miss, // went forward: its copy was stale
		"ExampleCache; fwd=stale":                     Miss,
		"ExampleCache; fwd=bypass":                    Bypass,
		"ExampleCache; fwd=method":                    Bypass,
		"ExampleCache; fwd=request; fwd-status=200":   Miss,
		"ExampleCache; fwd=partial":                   Miss,
		"ExampleCache; detail=synth":                  Synthetic,
		"ExampleCache":                                Unknown,
		"OriginCache; hit; ttl=1100, \"CDN Company Here\"; fwd=uri-miss; stored": Miss,
		"OriginCache; fwd=uri-miss; stored, CDN; hit; ttl=30":                    Hit,
		"ReverseProxyCache; hit":               Hit,
		`"varnish-iad"; hit; ttl=119`:          Hit,
		"varnish-1; fwd=miss; stored":          Miss,
		"varnish-1; hit; ttl=-3; detail=grace": Stale,
		"varnish-1; hit; detail=grace":         Stale,
		"varnish-1; hit; detail=\"stale\"":     Stale,
	} {
		st := Parse(v)
		assert.Equal(t, want, st.Class, v)
		assert.Equal(t, "cache-status", st.Source, v)
		assert.Equal(t, v, st.Raw)
	}
}

func TestParseRFC9211Fields(t *testing.T) {
	st := Parse(`OriginCache; hit; ttl=1100, "CDN Company Here"; fwd=uri-miss; fwd-status=200; stored; collapsed; key="/a"; detail=abc; x-custom=7`)
	require.Len(t, st.Entries, 2)
	o, c := st.Entries[0], st.Entries[1]
	assert.Equal(t, "OriginCache", o.Cache)
	assert.True(t, o.Hit)
	require.NotNil(t, o.TTL)
	assert.Equal(t, 1100.0, *o.TTL)
	assert.Equal(t, "CDN Company Here", c.Cache)
	assert.Equal(t, "uri-miss", c.Fwd)
	assert.Equal(t, 200, c.FwdStatus)
	assert.True(t, c.Stored)
	assert.True(t, c.Collapsed)
	assert.Equal(t, "/a", c.Key)
	assert.Equal(t, "abc", c.Detail)
	assert.Equal(t, map[string]string{"x-custom": "7"}, c.Params)
	assert.Nil(t, st.TTL, "the last cache gave no ttl")
}

func TestParsePipely(t *testing.T) {
	for v, want := range map[string]Class{
		"region=iad; origin=app,app.origin.local; ttl=10.000; grace=86400.000; storage=memory; hit; hits=3":        Hit,
		"region=iad; origin=app,app.origin.local; ttl=-2.000; grace=86400.000; storage=memory; hit; stale; hits=3": Stale,
		"region=iad; origin=app,app.origin.local; ttl=-2.000; storage=memory; hit; hits=3":                         Stale,
		"region=iad; origin=app,app.origin.local; ttl=60.000; storage=memory; miss; hits=0":                        Miss,
		"region=ord; origin=feeds; miss":     Miss,
		"region=ord; bypass":                 Bypass,
		"region=ord; pass":                   Bypass,
		"region=ord; synth":                  Synthetic,
		"region=iad; storage=memory; hits=0": Miss,
		"region=iad; storage=memory; hits=5": Hit,
		"hit; hits=1":                        Hit,
		"miss":                               Miss,
	} {
		st := Parse(v)
		assert.Equal(t, want, st.Class, v)
		assert.Equal(t, "cache-status (pipely)", st.Source, v)
	}
	st := Parse("region=iad; ttl=10.000; hit; hits=3")
	assert.Equal(t, 3, st.Hits)
	require.NotNil(t, st.TTL)
	assert.Equal(t, 10.0, *st.TTL)
}

func TestHitsZeroIsNeverAHit(t *testing.T) {
	for _, v := range []string{"region=iad; hits=0", "region=iad; miss; hits=0", "hits=0"} {
		assert.False(t, Parse(v).Class.IsHit(), v)
	}
	h := http.Header{}
	h.Set("X-Cache", "MISS")
	h.Set("X-Cache-Hits", "0")
	assert.Equal(t, Miss, FromHeader(h).Class)
}

func TestParseXCache(t *testing.T) {
	for v, want := range map[string]Class{
		"HIT":                        Hit,
		"hit":                        Hit,
		"MISS":                       Miss,
		"HIT, MISS":                  Miss,
		"MISS, HIT":                  Hit,
		"Hit from cloudfront":        Hit,
		"Miss from cloudfront":       Miss,
		"TCP_HIT":                    Hit,
		"TCP_MISS":                   Miss,
		"TCP_REFRESH_HIT":            Hit,
		"PASS":                       Bypass,
		"STALE":                      Stale,
		"EXPIRED":                    Miss, // expired: fetched again
		"UPDATING":                   Stale,
		"REVALIDATED":                Hit,
		"HIT-STALE":                  Stale,
		"RefreshHit from cloudfront": Hit,
		"TCP_REFRESH_MISS":           Miss,
		"TCP_REFRESH_UNMODIFIED":     Hit,
		"hit cached":                 Hit,
		"hit graced cached":          Stale,
		"hit graced uncacheable":     Stale,
		"miss cached":                Miss,
		"miss uncacheable":           Miss,
		"pass uncacheable":           Bypass,
		"pipe uncacheable":           Bypass,
		"synth synth":                Synthetic,
		"HITPASS":                    Bypass,
		"hit-for-pass":               Bypass,
		"HITMISS":                    Miss,
		"hit-for-miss":               Miss,
		"DYNAMIC":                    Bypass,
		"NONE":                       Synthetic,
		"MISS, hit graced cached":    Stale,
		"SYNTH":                      Synthetic,
		"something else entirely":    Unknown,
		", ":                         Unknown,
	} {
		assert.Equal(t, want, ParseXCache(v, "").Class, v)
	}
	st := ParseXCache("HIT, HIT", "4, 7")
	assert.Equal(t, 7, st.Hits)
}

func TestFromHeaderPrefersCacheStatus(t *testing.T) {
	h := http.Header{}
	h.Set("X-Cache", "HIT")
	h.Set("Cache-Status", "varnish; fwd=miss")
	assert.Equal(t, Miss, FromHeader(h).Class)

	// Two Cache-Status header lines are one list.
	h = http.Header{}
	h.Add("Cache-Status", "Origin; hit")
	h.Add("Cache-Status", "Edge; fwd=uri-miss")
	st := FromHeader(h)
	assert.Equal(t, Miss, st.Class)
	assert.Len(t, st.Entries, 2)

	st = FromHeader(http.Header{})
	assert.Equal(t, Unknown, st.Class)
	assert.Equal(t, "", st.Source)
}

func TestUnparseableIsUnknown(t *testing.T) {
	for _, v := range []string{"", ";;;", "(((", "\"unterminated", "=", "a=b=c", "\x00\xff"} {
		st := Parse(v)
		assert.Equal(t, Unknown, st.Class, "%q", v)
		assert.Equal(t, v, st.Raw)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ExampleCache; hit; ttl=-412", "region=iad; origin=a,b; ttl=10.000; hit; stale; hits=3", "HIT, MISS", `"a"; fwd=stale`, "(a b); hit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range []Status{Parse(s), ParseXCache(s, s)} {
			switch st.Class {
			case Hit, Stale, Miss, Bypass, Synthetic, Unknown:
			default:
				t.Fatalf("%q: class %q is not one of the six", s, st.Class)
			}
		}
	})
}

// hdr builds a header from name, value pairs; a name given twice makes two
// lines, as on the wire.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.Header
		o      Options
		class  Class
		source string
		note   string // Note contains it; "" means Note is empty
	}{
		// No evidence at all.
		{"nothing", hdr(), Options{}, Unknown, "", ""},
		{"unrelated headers", hdr("Server", "nginx", "Via", "1.1 varnish"), Options{}, Unknown, "", ""},

		// RFC 9211 Cache-Status alone: the last member decides.
		{"rfc hit", hdr("Cache-Status", "ExampleCache; hit"), Options{}, Hit, "cache-status", ""},
		{"rfc stale ttl", hdr("Cache-Status", "ExampleCache; hit; ttl=-412"), Options{}, Stale, "cache-status", ""},
		{"rfc stale detail", hdr("Cache-Status", "ExampleCache; hit; detail=grace"), Options{}, Stale, "cache-status", ""},
		{"rfc fwd=stale is a miss", hdr("Cache-Status", "ExampleCache; fwd=stale"), Options{}, Miss, "cache-status", ""},
		{"rfc uri-miss", hdr("Cache-Status", "ExampleCache; fwd=uri-miss; stored"), Options{}, Miss, "cache-status", ""},
		{"rfc bypass", hdr("Cache-Status", "ExampleCache; fwd=bypass"), Options{}, Bypass, "cache-status", ""},
		{"rfc method", hdr("Cache-Status", "ExampleCache; fwd=method"), Options{}, Bypass, "cache-status", ""},
		{"rfc synth", hdr("Cache-Status", "ExampleCache; detail=synth"), Options{}, Synthetic, "cache-status", ""},
		{"rfc neither", hdr("Cache-Status", "ExampleCache"), Options{}, Unknown, "cache-status", "not understood"},
		{"rfc layers", hdr("Cache-Status", "OriginCache; hit; ttl=1100, \"CDN Company Here\"; fwd=uri-miss; stored"), Options{}, Miss, "cache-status", ""},
		{"unreadable", hdr("Cache-Status", "((("), Options{}, Unknown, "cache-status", "not understood"},
		{"unreadable, then X-Cache", hdr("Cache-Status", "(((", "X-Cache", "HIT"), Options{}, Hit, "x-cache", "Cache-Status \"(((\" not understood"},

		// The pipely form.
		{"pipely hit", hdr("Cache-Status", "region=iad; origin=app,app.origin.local; ttl=10.000; grace=86400.000; storage=memory; hit; hits=3"), Options{}, Hit, "cache-status (pipely)", ""},
		{"pipely stale", hdr("Cache-Status", "region=iad; ttl=-2.000; storage=memory; hit; stale; hits=3"), Options{}, Stale, "cache-status (pipely)", ""},
		{"pipely miss", hdr("Cache-Status", "region=iad; ttl=60.000; storage=memory; miss; hits=0"), Options{}, Miss, "cache-status (pipely)", ""},
		{"pipely bypass", hdr("Cache-Status", "region=ord; origin=app,app.origin.local; bypass"), Options{}, Bypass, "cache-status (pipely)", ""},
		{"pipely synth", hdr("Cache-Status", "region=LOCAL; synth"), Options{}, Synthetic, "cache-status (pipely)", ""},
		{"pipely hits=0", hdr("Cache-Status", "region=iad; storage=memory; hits=0"), Options{}, Miss, "cache-status (pipely)", ""},
		{"pipely hit, Varnish agrees", hdr("Cache-Status", "region=iad; ttl=9.000; hit; hits=2", "X-Varnish", "32770 3"), Options{}, Hit, "cache-status (pipely)", ""},
		{"pipely hit-for-miss", hdr("Cache-Status", "region=iad; ttl=0.000; miss; hits=0", "X-Varnish", "32771"), Options{}, Miss, "cache-status (pipely)", ""},
		{"pipely ignores CacheName", hdr("Cache-Status", "region=iad; hit; hits=1"), Options{CacheName: "edge-1"}, Hit, "cache-status (pipely)", ""},

		// X-Cache, X-Cache-Status, Cf-Cache-Status.
		{"x-cache hit", hdr("X-Cache", "HIT", "X-Cache-Hits", "3"), Options{}, Hit, "x-cache", ""},
		{"x-cache layers", hdr("X-Cache", "HIT, MISS"), Options{}, Miss, "x-cache", ""},
		{"x-cache two lines", hdr("X-Cache", "MISS", "X-Cache", "HIT"), Options{}, Hit, "x-cache", ""},
		{"x-cache hit cached", hdr("X-Cache", "hit cached"), Options{}, Hit, "x-cache", ""},
		{"x-cache hit graced", hdr("X-Cache", "hit graced cached"), Options{}, Stale, "x-cache", ""},
		{"x-cache miss cached", hdr("X-Cache", "miss cached"), Options{}, Miss, "x-cache", ""},
		{"x-cache miss uncacheable", hdr("X-Cache", "miss uncacheable"), Options{}, Miss, "x-cache", ""},
		{"x-cache pass", hdr("X-Cache", "pass uncacheable"), Options{}, Bypass, "x-cache", ""},
		{"x-cache pipe", hdr("X-Cache", "pipe uncacheable"), Options{}, Bypass, "x-cache", ""},
		{"x-cache synth", hdr("X-Cache", "synth synth"), Options{}, Synthetic, "x-cache", ""},
		{"x-cache unknown", hdr("X-Cache", "something else"), Options{}, Unknown, "x-cache", "not understood"},
		{"x-cache-status HIT", hdr("X-Cache-Status", "HIT"), Options{}, Hit, "x-cache-status", ""},
		{"x-cache-status MISS", hdr("X-Cache-Status", "MISS"), Options{}, Miss, "x-cache-status", ""},
		{"x-cache-status EXPIRED", hdr("X-Cache-Status", "EXPIRED"), Options{}, Miss, "x-cache-status", ""},
		{"x-cache-status STALE", hdr("X-Cache-Status", "STALE"), Options{}, Stale, "x-cache-status", ""},
		{"x-cache-status UPDATING", hdr("X-Cache-Status", "UPDATING"), Options{}, Stale, "x-cache-status", ""},
		{"x-cache-status REVALIDATED", hdr("X-Cache-Status", "REVALIDATED"), Options{}, Hit, "x-cache-status", ""},
		{"x-cache-status BYPASS", hdr("X-Cache-Status", "BYPASS"), Options{}, Bypass, "x-cache-status", ""},
		{"cf HIT", hdr("Cf-Cache-Status", "HIT"), Options{}, Hit, "cf-cache-status", ""},
		{"cf MISS", hdr("Cf-Cache-Status", "MISS"), Options{}, Miss, "cf-cache-status", ""},
		{"cf EXPIRED", hdr("Cf-Cache-Status", "EXPIRED"), Options{}, Miss, "cf-cache-status", ""},
		{"cf STALE", hdr("Cf-Cache-Status", "STALE"), Options{}, Stale, "cf-cache-status", ""},
		{"cf UPDATING", hdr("Cf-Cache-Status", "UPDATING"), Options{}, Stale, "cf-cache-status", ""},
		{"cf REVALIDATED", hdr("Cf-Cache-Status", "REVALIDATED"), Options{}, Hit, "cf-cache-status", ""},
		{"cf BYPASS", hdr("Cf-Cache-Status", "BYPASS"), Options{}, Bypass, "cf-cache-status", ""},
		{"cf DYNAMIC", hdr("Cf-Cache-Status", "DYNAMIC"), Options{}, Bypass, "cf-cache-status", ""},
		{"cf NONE", hdr("Cf-Cache-Status", "NONE"), Options{}, Synthetic, "cf-cache-status", ""},
		{"cf lower case", hdr("Cf-Cache-Status", "hit"), Options{}, Hit, "cf-cache-status", ""},
		{"cache-status before x-cache", hdr("X-Cache", "HIT", "Cache-Status", "varnish; fwd=miss"), Options{}, Miss, "cache-status", ""},
		{"x-cache before x-cache-status", hdr("X-Cache-Status", "MISS", "X-Cache", "HIT"), Options{}, Hit, "x-cache", ""},
		{"x-cache-status before cf", hdr("Cf-Cache-Status", "HIT", "X-Cache-Status", "MISS"), Options{}, Miss, "x-cache-status", ""},

		// Varnish's own evidence, alone.
		{"x-varnish two ids", hdr("X-Varnish", "1 2"), Options{}, Hit, "x-varnish", "two ids"},
		{"x-varnish one id", hdr("X-Varnish", "3"), Options{}, Miss, "x-varnish", "one id"},
		{"x-varnish origin's then a miss", hdr("X-Varnish", "111 222", "X-Varnish", "1001"), Options{}, Miss, "x-varnish", "one id"},
		{"x-varnish origin's then a hit", hdr("X-Varnish", "111 222", "X-Varnish", "1003 1002"), Options{}, Hit, "x-varnish", "two ids"},
		{"x-varnish joined", hdr("X-Varnish", "111 222, 1001"), Options{}, Miss, "x-varnish", "one id"},
		{"x-varnish unreadable", hdr("X-Varnish", "abc"), Options{}, Unknown, "", "X-Varnish \"abc\" unreadable"},
		{"x-varnish three ids", hdr("X-Varnish", "1 2 3", "Age", "5"), Options{}, Hit, "age", "unreadable"},

		// A header stored with the object (or passed on from the origin)
		// against Varnish's own evidence.
		{"origin cache-status on a hit", hdr("Cache-Status", "CloudFront; fwd=miss", "X-Varnish", "5 3"), Options{}, Hit, "x-varnish", "Cache-Status says miss but X-Varnish has two ids (a hit): the header predates this cache (stored with the object), ignored"},
		{"origin x-cache hit on a miss", hdr("X-Cache", "Hit from cloudfront", "X-Varnish", "7"), Options{}, Miss, "x-varnish", "X-Cache says hit but X-Varnish has one id"},
		{"origin x-cache miss on a hit", hdr("X-Cache", "Miss from cloudfront", "X-Varnish", "9 4"), Options{}, Hit, "x-varnish", "stored with the object"},
		{"origin cf hit on a miss", hdr("Cf-Cache-Status", "HIT", "X-Varnish", "12"), Options{}, Miss, "x-varnish", "Cf-Cache-Status says hit"},
		{"origin x-cache-status stale on a miss", hdr("X-Cache-Status", "STALE", "X-Varnish", "12"), Options{}, Miss, "x-varnish", "ignored"},
		{"origin rfc list on a hit", hdr("Cache-Status", "Origin; hit, CDN; fwd=uri-miss; stored", "X-Varnish", "44 40"), Options{}, Hit, "x-varnish", "ignored"},
		{"origin ignored, own x-cache agrees", hdr("Cache-Status", "CloudFront; fwd=miss", "X-Cache", "hit graced cached", "X-Varnish", "5 3"), Options{}, Stale, "x-cache", "Cache-Status says miss"},
		{"unknown header, x-varnish decides", hdr("X-Cache", "something else", "X-Varnish", "5 3"), Options{}, Hit, "x-varnish", "not understood"},
		{"pipely hits=0 on a two-id hit", hdr("Cache-Status", "region=iad; miss; hits=0", "X-Varnish", "8 6"), Options{}, Hit, "x-varnish", "ignored"},

		// As varnishd 7.1 delivers an object whose origin sent its own
		// X-Varnish, Cache-Status and X-Cache, with a VCL that sets none.
		{"varnishd miss, origin headers", hdr("X-Varnish", "111 222", "Cache-Status", "CloudFront; fwd=miss", "X-Cache", "Miss from cloudfront",
			"X-Varnish", "1001", "Age", "30"), Options{}, Miss, "cache-status", ""},
		{"varnishd hit, origin headers", hdr("X-Varnish", "111 222", "Cache-Status", "CloudFront; fwd=miss", "X-Cache", "Miss from cloudfront",
			"X-Varnish", "1003 1002", "Age", "30"), Options{}, Hit, "x-varnish", "X-Cache says miss but X-Varnish has two ids"},

		// As varnishd 7.1 delivers with the common X-Cache VCL: a miss, a hit
		// in the same second (Age 0), then a hit in grace.
		{"varnishd x-cache miss", hdr("X-Varnish", "1001", "Age", "0", "X-Cache", "miss cached"), Options{}, Miss, "x-cache", ""},
		{"varnishd x-cache hit at age 0", hdr("X-Varnish", "1003 1002", "Age", "0", "X-Cache", "hit cached"), Options{}, Hit, "x-cache", ""},
		{"varnishd x-cache grace hit", hdr("X-Varnish", "1004 1002", "Age", "2", "X-Cache", "hit graced cached"), Options{}, Stale, "x-cache", ""},
		{"varnishd hit at age 0, nothing else", hdr("Age", "0"), Options{}, Unknown, "", "a hit less than a second old"},

		// A header that agrees with X-Varnish refines the class.
		{"hit refined stale", hdr("Cache-Status", "varnish-1; hit; ttl=-3", "X-Varnish", "5 3"), Options{}, Stale, "cache-status", ""},
		{"hit refined hit", hdr("X-Cache", "HIT", "X-Varnish", "5 3"), Options{}, Hit, "x-cache", ""},
		{"miss refined bypass", hdr("Cache-Status", "varnish-1; fwd=bypass", "X-Varnish", "5"), Options{}, Bypass, "cache-status", ""},
		{"miss refined synth", hdr("X-Cache", "synth synth", "X-Varnish", "5"), Options{}, Synthetic, "x-cache", ""},
		{"fwd=stale agrees with one id", hdr("Cache-Status", "varnish-1; fwd=stale; fwd-status=200", "X-Varnish", "8"), Options{}, Miss, "cache-status", ""},
		{"miss cached agrees with one id", hdr("X-Cache", "miss cached", "X-Varnish", "8"), Options{}, Miss, "x-cache", ""},

		// Age, the weakest evidence.
		{"age only > 0", hdr("Age", "42"), Options{}, Hit, "age", "only Age: 42"},
		{"age only 0", hdr("Age", "0"), Options{}, Unknown, "", "only Age: 0"},
		{"age unreadable", hdr("Age", "-3"), Options{}, Unknown, "", ""},
		{"age does not override a header", hdr("Cache-Status", "varnish; fwd=miss", "Age", "30"), Options{}, Miss, "cache-status", "Age 30 on a miss"},
		{"age does not override x-varnish", hdr("X-Varnish", "1001", "Age", "30"), Options{}, Miss, "x-varnish", "one id"},
		{"age 0 on a two-id hit", hdr("X-Varnish", "1003 1002", "Age", "0"), Options{}, Hit, "x-varnish", "two ids"},
		{"age 0, header hit", hdr("X-Cache", "HIT", "Age", "0"), Options{}, Hit, "x-cache", ""},

		// CacheName selects this cache's member.
		{"name: last member", hdr("Cache-Status", "Origin; hit, edge-1; fwd=uri-miss"), Options{CacheName: "edge-1"}, Miss, "cache-status", ""},
		{"name: earlier member", hdr("Cache-Status", "edge-1; fwd=uri-miss, Origin; hit"), Options{CacheName: "edge-1"}, Miss, "cache-status", ""},
		{"name: last of two with the name", hdr("Cache-Status", "edge-1; fwd=miss, edge-1; hit; ttl=30"), Options{CacheName: "edge-1"}, Hit, "cache-status", ""},
		{"name: any case", hdr("Cache-Status", "Origin; hit, edge-1; fwd=uri-miss"), Options{CacheName: "EDGE-1"}, Miss, "cache-status", ""},
		{"name: quoted", hdr("Cache-Status", `Origin; hit, "edge 1"; hit; ttl=-2`), Options{CacheName: "edge 1"}, Stale, "cache-status", ""},
		{"name: member agrees with x-varnish", hdr("Cache-Status", "Origin; hit, edge-1; fwd=uri-miss", "X-Varnish", "7"), Options{CacheName: "edge-1"}, Miss, "cache-status", ""},
		{"name: member contradicts one id", hdr("Cache-Status", "Origin; hit, edge-1; fwd=uri-miss", "X-Varnish", "7"), Options{CacheName: "Origin"}, Miss, "x-varnish", `Cache-Status member "Origin" says hit but X-Varnish has one id (a miss, pass or synthetic response): X-Varnish wins`},
		{"name: member contradicts two ids", hdr("Cache-Status", "Origin; hit, edge-1; fwd=uri-miss", "X-Varnish", "7 5"), Options{CacheName: "edge-1"}, Hit, "x-varnish", `member "edge-1" says miss but X-Varnish has two ids (a hit): X-Varnish wins`},
		{"name: not found, x-varnish decides", hdr("Cache-Status", "CloudFront; fwd=miss", "X-Varnish", "5 3"), Options{CacheName: "edge-1"}, Hit, "x-varnish", `Cache-Status has no member named "edge-1": every member is another cache's, ignored`},
		{"name: not found, one id", hdr("Cache-Status", "CloudFront; hit", "X-Varnish", "5"), Options{CacheName: "edge-1"}, Miss, "x-varnish", "no member named"},
		{"name: not found, age decides", hdr("Cache-Status", "CloudFront; fwd=miss", "Age", "10"), Options{CacheName: "edge-1"}, Hit, "age", "no member named"},
		{"name: not found, x-cache decides", hdr("Cache-Status", "CloudFront; hit", "X-Cache", "MISS"), Options{CacheName: "edge-1"}, Miss, "x-cache", "no member named"},
		{"name: not found, nothing else", hdr("Cache-Status", "CloudFront; hit"), Options{CacheName: "edge-1"}, Unknown, "cache-status", "no member named"},
		{"no name: foreign last member decides without x-varnish", hdr("Cache-Status", "CloudFront; fwd=miss"), Options{}, Miss, "cache-status", ""},

		// An application's own header (Options.CacheHeader), first.
		{"own header hit", hdr("X-My-Cache", "HIT"), Options{CacheHeader: "x-my-cache"}, Hit, "x-my-cache", ""},
		{"own header lower case", hdr("X-My-Cache", "miss"), Options{CacheHeader: "X-My-Cache"}, Miss, "x-my-cache", ""},
		{"own header pass", hdr("X-My-Cache", "PASS"), Options{CacheHeader: "X-My-Cache"}, Bypass, "x-my-cache", ""},
		{"own header uncacheable", hdr("X-My-Cache", "Uncacheable"), Options{CacheHeader: "X-My-Cache"}, Bypass, "x-my-cache", ""},
		{"own header stale", hdr("X-My-Cache", "STALE"), Options{CacheHeader: "X-My-Cache"}, Stale, "x-my-cache", ""},
		{"own header expired", hdr("X-My-Cache", "EXPIRED"), Options{CacheHeader: "X-My-Cache"}, Miss, "x-my-cache", ""},
		{"own header before cache-status", hdr("X-My-Cache", "MISS", "Cache-Status", "c; hit"), Options{CacheHeader: "X-My-Cache"}, Miss, "x-my-cache", ""},
		{"own header not asked for", hdr("X-My-Cache", "MISS", "Age", "40"), Options{}, Hit, "age", "only Age"},
		{"own header against x-varnish", hdr("X-My-Cache", "MISS", "X-Varnish", "5 3"), Options{CacheHeader: "X-My-Cache"}, Hit, "x-varnish", "X-My-Cache says miss but X-Varnish has two ids"},
		{"own header unknown value", hdr("X-My-Cache", "maybe", "Age", "3"), Options{CacheHeader: "X-My-Cache"}, Hit, "age", `X-My-Cache "maybe" not understood`},
		{"own header is a built-in one", hdr("X-Cache", "HIT"), Options{CacheHeader: "x-cache"}, Hit, "x-cache", ""},

		// Magento 2: X-Varnish and Age removed; X-Magento-Cache-Debug and Grace.
		{"magento hit", hdr("X-Magento-Cache-Debug", "HIT", "Grace", "none"), Options{}, Hit, "x-magento-cache-debug", ""},
		{"magento hit in grace", hdr("X-Magento-Cache-Debug", "HIT", "Grace", "normal (healthy server)"), Options{}, Stale, "x-magento-cache-debug", ""},
		{"magento hit, unhealthy", hdr("X-Magento-Cache-Debug", "HIT", "Grace", "unlimited (unhealthy server)"), Options{}, Stale, "x-magento-cache-debug", ""},
		{"magento hit without grace", hdr("X-Magento-Cache-Debug", "HIT"), Options{}, Hit, "x-magento-cache-debug", ""},
		{"magento miss", hdr("X-Magento-Cache-Debug", "MISS"), Options{}, Miss, "x-magento-cache-debug", ""},
		{"magento uncacheable", hdr("X-Magento-Cache-Debug", "UNCACHEABLE"), Options{}, Bypass, "x-magento-cache-debug", ""},
		{"magento after x-cache", hdr("X-Magento-Cache-Debug", "HIT", "X-Cache", "MISS"), Options{}, Miss, "x-cache", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Read(tc.h, tc.o)
			assert.Equal(t, tc.class, st.Class)
			assert.Equal(t, tc.source, st.Source)
			if tc.note == "" {
				assert.Empty(t, st.Note)
			} else {
				assert.Contains(t, st.Note, tc.note)
			}
			assert.Equal(t, st, Read(reduce(withNoise(tc.h), tc.o), tc.o), "a header reduced to Options.Headers() reads the same")
			if tc.o == (Options{}) {
				assert.Equal(t, st, FromHeader(tc.h))
			}
		})
	}
}

// withNoise copies h and adds headers Read must not look at.
func withNoise(h http.Header) http.Header {
	n := h.Clone()
	if n == nil {
		n = http.Header{}
	}
	n.Set("Server", "Varnish HIT")
	n.Set("Via", "1.1 varnish (Varnish/7.1)")
	n.Set("X-Served-By", "cache-iad-1 MISS")
	n.Set("Cache-Control", "max-age=60")
	return n
}

// reduce keeps only the headers Read consults, as the HTTP engine does.
func reduce(h http.Header, o Options) http.Header {
	r := http.Header{}
	for _, k := range o.Headers() {
		if v := h.Values(k); len(v) > 0 {
			r[k] = append([]string(nil), v...)
		}
	}
	return r
}

func TestReadFields(t *testing.T) {
	st := Read(hdr("Cache-Status", "Origin; hit; ttl=1100, edge-1; fwd=uri-miss; stored", "X-Varnish", "5 3", "Age", "12"), Options{})
	assert.Equal(t, Hit, st.Class)
	assert.Equal(t, "x-varnish", st.Source)
	assert.Equal(t, "5 3", st.Raw)
	assert.Len(t, st.Entries, 2, "members are kept though the list did not decide")
	assert.Nil(t, st.TTL, "no ttl from a header that did not decide")
	assert.Equal(t, -1, st.Hits)
	assert.Equal(t, 12, st.Age)
	assert.Equal(t, 2, st.VarnishIDs)

	st = Read(hdr("Cache-Status", "region=iad; ttl=10.000; hit; hits=3", "X-Varnish", "9 7", "Age", "0"), Options{})
	assert.Equal(t, Hit, st.Class)
	assert.Equal(t, "region=iad; ttl=10.000; hit; hits=3", st.Raw)
	assert.Equal(t, 3, st.Hits)
	require.NotNil(t, st.TTL)
	assert.Equal(t, 10.0, *st.TTL)
	assert.Equal(t, 0, st.Age)

	st = Read(hdr("X-Cache", "HIT, HIT", "X-Cache-Hits", "4, 7"), Options{})
	assert.Equal(t, 7, st.Hits)
	assert.Equal(t, -1, st.Age)
	assert.Equal(t, 0, st.VarnishIDs)

	st = Read(hdr("Age", "0"), Options{})
	assert.Equal(t, Unknown, st.Class)
	assert.Equal(t, "", st.Source, "Age 0 alone decided nothing")
}

func TestAge(t *testing.T) {
	for v, want := range map[string]int{
		"0": 0, "42": 42, " 7 ": 7, "12, 15": 12, "99999999999999999999": math.MaxInt32,
		"": -1, "-1": -1, "1.5": -1, "abc": -1, "+3": -1, "0x10": -1,
	} {
		assert.Equal(t, want, Read(hdr("Age", v), Options{}).Age, "%q", v)
	}
	assert.Equal(t, -1, Read(hdr(), Options{}).Age)
}

func TestVarnishIDs(t *testing.T) {
	for _, tc := range []struct {
		h   http.Header
		ids int
	}{
		{hdr(), 0},
		{hdr("X-Varnish", "32770"), 1},
		{hdr("X-Varnish", "32770 3"), 2},
		{hdr("X-Varnish", "  32770   3 "), 2},
		{hdr("X-Varnish", "111 222", "X-Varnish", "1001"), 1},
		{hdr("X-Varnish", "1001", "X-Varnish", "111 222"), 2},
		{hdr("X-Varnish", "1 2 3"), 0},
		{hdr("X-Varnish", "a b"), 0},
		{hdr("X-Varnish", "-1"), 0},
		{hdr("X-Varnish", ""), 0},
		{hdr("X-Varnish", "5 3, "), 0},
	} {
		assert.Equal(t, tc.ids, Read(tc.h, Options{}).VarnishIDs, "%v", tc.h)
		assert.Equal(t, tc.ids == 2, VarnishHit(tc.h), "%v", tc.h)
	}
	for v, want := range map[string]int{
		"": 0, "32770": 1, "32770 3": 2, " 32770\t3 ": 2, "1 2 3": 0, "a": 0, "12a": 0, "-1": 0,
		"111 222, 1001": 1, "1001, 111 222": 2, "5 3, ": 0, ",": 0, "1,2": 1,
	} {
		assert.Equal(t, want, VarnishIDs(v), "%q", v)
		assert.Equal(t, want, VarnishIDs([]byte(v)), "%q as bytes", v)
	}
}

func TestHeaders(t *testing.T) {
	hs := Headers()
	assert.Equal(t, []string{"Cache-Status", "X-Cache", "X-Cache-Hits", "X-Cache-Status", "Cf-Cache-Status",
		"X-Magento-Cache-Debug", "Grace", "X-Varnish", "Age"}, hs)
	for _, k := range hs {
		assert.Equal(t, http.CanonicalHeaderKey(k), k)
	}
	hs[0] = "changed"
	assert.Equal(t, "Cache-Status", Headers()[0], "each call returns a fresh slice")

	assert.Equal(t, Headers(), Options{}.Headers())
	assert.Equal(t, append([]string{"X-My-Cache"}, Headers()...), Options{CacheHeader: "x-my-cache"}.Headers())
	assert.Equal(t, Headers(), Options{CacheHeader: "x-cache"}.Headers(), "a built-in header is not listed twice")
}

func TestStaleUnknown(t *testing.T) {
	for _, tc := range []struct {
		h       http.Header
		unknown bool
	}{
		{hdr("X-Varnish", "5 3"), true},
		{hdr("Age", "40"), true},
		{hdr("X-Varnish", "5 3", "Age", "40"), true},
		{hdr("X-Magento-Cache-Debug", "HIT"), true},
		{hdr("X-Magento-Cache-Debug", "HIT", "Grace", "none"), false},
		{hdr("Cache-Status", "c; hit; ttl=3"), false},
		{hdr("Cache-Status", "c; hit; ttl=3", "X-Varnish", "5 3"), false},
		{hdr("X-Cache", "HIT", "X-Varnish", "5 3"), false},
		{hdr("X-Varnish", "5"), false},
		{hdr("Age", "0"), false},
	} {
		st := Read(tc.h, Options{})
		assert.Equal(t, tc.unknown, st.StaleUnknown, "%v", tc.h)
		if st.StaleUnknown {
			assert.Equal(t, Hit, st.Class, "%v", tc.h)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(Read(hdr("Age", "0"), Options{}))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"age":0`)
	assert.NotContains(t, string(b), `"varnish_ids"`)

	b, err = json.Marshal(Read(hdr("X-Varnish", "5 3"), Options{}))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"age":-1`)
	assert.Contains(t, string(b), `"varnish_ids":2`)
	assert.Contains(t, string(b), `"note":"X-Varnish has two ids`)
	assert.Contains(t, string(b), `"source":"x-varnish"`)

	b, err = json.Marshal(Read(hdr("X-Cache", "HIT"), Options{}))
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"note"`)
}

func FuzzRead(f *testing.F) {
	f.Add("CloudFront; fwd=miss", "Miss from cloudfront", "0", "HIT", "DYNAMIC", "5 3", "12", "")
	f.Add("Origin; hit, edge-1; fwd=uri-miss", "hit graced cached", "", "", "", "7", "0", "edge-1")
	f.Add("region=iad; origin=a,b; ttl=10.000; hit; stale; hits=3", "", "", "", "", "111 222, 1001", "", "")
	f.Add("(a b); hit", "HIT, MISS", "4, 7", "EXPIRED", "NONE", "1 2 3", "99999999999999999999", "(inner list)")
	f.Add(`"a"; fwd=stale`, "TCP_REFRESH_HIT", "x", "UPDATING", "hit", "", "-1", "a")
	f.Fuzz(func(t *testing.T, cs, xc, xch, xcs, cf, xv, age, name string) {
		h := http.Header{}
		for k, v := range map[string]string{"Cache-Status": cs, "X-Cache": xc, "X-Cache-Hits": xch,
			"X-Cache-Status": xcs, "Cf-Cache-Status": cf, "X-Varnish": xv, "Age": age} {
			if v != "" {
				h.Add(k, v)
			}
		}
		o := Options{CacheName: name}
		st := Read(h, o)
		switch st.Class {
		case Hit, Stale, Miss, Bypass, Synthetic, Unknown:
		default:
			t.Fatalf("class %q is not one of the six", st.Class)
		}
		if st.VarnishIDs < 0 || st.VarnishIDs > 2 {
			t.Fatalf("VarnishIDs %d", st.VarnishIDs)
		}
		if st.VarnishIDs == 2 && !st.Class.IsHit() || st.VarnishIDs == 1 && st.Class.IsHit() {
			t.Fatalf("class %s contradicts X-Varnish %q (%d ids)", st.Class, xv, st.VarnishIDs)
		}
		if VarnishHit(h) != (st.VarnishIDs == 2) {
			t.Fatalf("VarnishHit %v with %d ids", VarnishHit(h), st.VarnishIDs)
		}
		if xv != "" && VarnishIDs(xv) != st.VarnishIDs {
			t.Fatalf("VarnishIDs(%q) = %d, Read says %d", xv, VarnishIDs(xv), st.VarnishIDs)
		}
		if st.StaleUnknown && st.Class != Hit {
			t.Fatalf("StaleUnknown on a %s", st.Class)
		}
		if st.Age < -1 {
			t.Fatalf("Age %d", st.Age)
		}
		if st.Class != Unknown && st.Source == "" {
			t.Fatalf("class %s without a source", st.Class)
		}
		if r := Read(reduce(withNoise(h), o), o); !reflect.DeepEqual(st, r) {
			t.Fatalf("reduced header reads %+v, full %+v", r, st)
		}
	})
}
