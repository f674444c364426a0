package serve_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/serve"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

func TestReadTokens(t *testing.T) {
	long := strings.Repeat("k", 32)
	got, err := serve.ReadTokens(strings.NewReader("# tokens\n\nci "+long+"\n  "+long+"x  \n"), "tokens")
	require.NoError(t, err)
	require.Equal(t, []serve.Token{{Name: "ci", Value: long}, {Name: "line-4", Value: long + "x"}}, got)
	for in, want := range map[string]string{
		"ci short\n":                          "tokens line 1: the token is shorter than 16 characters",
		"a b c\n":                             "tokens line 1: write NAME TOKEN, or TOKEN alone",
		"ci " + long + "\nci " + long + "y\n": "tokens line 2: the name ci is used twice",
		"# nothing\n":                         "tokens: no tokens in it",
	} {
		_, err := serve.ReadTokens(strings.NewReader(in), "tokens")
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), long[:8], "an error never shows a token")
	}
}

func TestParseAllow(t *testing.T) {
	got, err := serve.ParseAllow([]string{"10.0.0.0/8", "fdaa::/16", "192.0.2.7", " "})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fdaa::/16"), netip.MustParsePrefix("192.0.2.7/32")}, got)
	_, err = serve.ParseAllow([]string{"example.com"})
	require.ErrorContains(t, err, `allow "example.com": give a network`)
}

func TestStepsJSON(t *testing.T) {
	for in, want := range map[string]api.Steps{
		`"purged"`:        {purge.ExpectPurged},
		`"miss,hit"`:      {purge.ExpectMiss, purge.ExpectHit},
		`["miss", "hit"]`: {purge.ExpectMiss, purge.ExpectHit},
		`true`:            {purge.ExpectPurged},
		`null`:            nil,
	} {
		var s api.Steps
		require.NoError(t, json.Unmarshal([]byte(in), &s), in)
		require.Equal(t, want, s, in)
	}
	var s api.Steps
	require.Error(t, json.Unmarshal([]byte(`"sometimes"`), &s))
	require.Error(t, json.Unmarshal([]byte(`{}`), &s))
}
