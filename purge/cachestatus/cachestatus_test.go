package cachestatus

import (
	"net/http"
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
