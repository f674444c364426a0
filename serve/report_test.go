package serve_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
	"github.com/cdnpurge/cdnpurge/serve"
)

// Reports that a serve of an earlier release kept in its journal (the
// JSON of its day, stored plain) are answered by GET /v1/jobs/ID in
// today's shape, as report.Upgrade rewrites them, in the report's own
// layout (a result a line) inside the job's view.
func TestReportsStoredBeforeAreServedInTodaysShape(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal.db")
	files, err := filepath.Glob("../purge/report/testdata/v1/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	stored := map[string][]byte{}
	for _, file := range files {
		old, err := os.ReadFile(file)
		require.NoError(t, err)
		var v struct {
			OK bool `json:"ok"`
		}
		require.NoError(t, json.Unmarshal(old, &v))
		id, err := serve.StoreFinishedJob(journal, []string{"https://cdnpurge.example/episodes/1"},
			[]purge.Instance{{Host: "127.0.0.1", Port: 9}}, v.OK, old)
		require.NoError(t, err)
		stored[id] = old
	}
	p := startServe(t, journal, nil, "--instance", "127.0.0.1:9")
	for id, old := range stored {
		st, _, body := call(t, http.MethodGet, p.url("/v1/jobs/"+id), "", nil)
		require.Equal(t, http.StatusOK, st, string(body))
		var v jobView
		require.NoError(t, json.Unmarshal(body, &v), string(body))
		rep := reporttest.Require(t, v.Report)
		want, err := report.Upgrade(old)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(v.Report), id)

		rows := 0
		for _, s := range rep.Steps {
			rows += len(s.Results)
		}
		assert.Equal(t, rows, strings.Count(string(body), "\n          {\"url\":"), "a result a line, nested in the job's view")
		assert.True(t, bytes.HasSuffix(body, []byte("\n  }\n}\n")), "the report last: %.200s", body[max(0, len(body)-200):])
	}
}
