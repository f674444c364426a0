package api_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// A serve of an earlier release answers the JSON of its day: the client
// gives it in today's shape (so --via prints what the CLI prints itself),
// and leaves text and Markdown as they came.
func TestClientGivesReportsOfOlderServesInTodaysShape(t *testing.T) {
	old, err := os.ReadFile("../../purge/report/testdata/v1/purge-miss-hit.json")
	require.NoError(t, err)
	const text = "purged 1 URL on 3/3 instances in 1.2ms\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderJob, "7")
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(text))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(old)
	}))
	defer srv.Close()
	c := &api.Client{URL: srv.URL}
	res, err := c.Purge(t.Context(), api.Request{URLs: []string{"https://cdnpurge.example/episodes/1"}}, "json", false)
	require.NoError(t, err)
	rep := reporttest.Require(t, res.Report)
	assert.Len(t, rep.Steps, 3)
	want, err := report.Upgrade(old)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(res.Report))

	res, err = c.Purge(t.Context(), api.Request{URLs: []string{"https://cdnpurge.example/episodes/1"}}, "text", false)
	require.NoError(t, err)
	assert.Equal(t, text, string(res.Report))
}
