package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// Reports as the releases before format_version 2 wrote them (testdata/v1,
// written by that release's report.Write from real runs against a real
// fleet: a purge, a failed one, purge with verify steps, a failed verify,
// a verify with --origin and --wait, Fly.io edge mode with a stopped
// machine) are upgraded to the current shape, losing nothing: each old
// field is found where docs/json.md says it went.
func TestUpgradeReportsOfEarlierReleases(t *testing.T) {
	files, err := filepath.Glob("testdata/v1/*.json")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 6)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			old, err := os.ReadFile(file)
			require.NoError(t, err)
			up, err := report.Upgrade(old)
			require.NoError(t, err)
			reporttest.Require(t, up)
			var got, want map[string]any
			require.NoError(t, json.Unmarshal(up, &got))
			want = upgradeByHand(t, old)
			assert.Equal(t, want, got)
			again, err := report.Upgrade(up)
			require.NoError(t, err)
			assert.Equal(t, string(up), string(again), "a current report is returned as it is")
			for _, l := range strings.Split(string(up), "\n") {
				if strings.Contains(l, `{"url":`) {
					assert.True(t, strings.HasPrefix(l, `        {"url":`), "a row a line, as written today: %s", l)
				}
			}
		})
	}
}

// upgradeByHand is what docs/json.md says became of each old field,
// applied to the decoded old report.
func upgradeByHand(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var old map[string]any
	require.NoError(t, json.Unmarshal(b, &old))
	var steps []map[string]any
	if _, ok := old["step"]; ok {
		steps = []map[string]any{old}
	} else {
		if p, ok := old["purge"].(map[string]any); ok {
			steps = append(steps, p)
		}
		for _, v := range old["verify"].([]any) {
			steps = append(steps, v.(map[string]any))
		}
	}
	list := func(v any) []any {
		if v == nil {
			return []any{}
		}
		return v.([]any)
	}
	out := map[string]any{"format_version": 2.0, "ok": old["ok"], "summary": old["summary"], "dry_run": false,
		"instances": steps[0]["instances"], "skipped": list(steps[0]["skipped"])}
	if len(steps) > 1 && old["ok"] == true {
		var s []string
		for _, st := range steps {
			s = append(s, st["summary"].(string))
		}
		out["summary"] = strings.Join(s, "; then ")
	}
	warnings := []any{}
	var newSteps []any
	for _, st := range steps {
		for _, w := range list(st["warnings"]) {
			if !containsAny(warnings, w) {
				warnings = append(warnings, w)
			}
		}
		n := map[string]any{}
		for k, v := range st {
			switch k {
			case "instances", "skipped", "warnings":
			case "checks":
				var rows []any
				for _, r := range v.([]any) {
					row := map[string]any{}
					for rk, rv := range r.(map[string]any) {
						switch rk {
						case "matched":
							row["ok"] = rv
						case "age":
							n, err := strconv.Atoi(rv.(string))
							require.NoError(t, err)
							row["age"] = float64(n)
						default:
							row[rk] = rv
						}
					}
					rows = append(rows, row)
				}
				n["results"] = rows
			default:
				n[k] = v
			}
		}
		if _, ok := n["request_headers"]; !ok {
			n["request_headers"] = []any{}
		}
		newSteps = append(newSteps, n)
	}
	out["warnings"], out["steps"] = warnings, newSteps
	return out
}

func containsAny(s []any, v any) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A report written today is returned by Upgrade byte for byte; what is not
// a report, and an old dry run (which has no URLs to rebuild steps from),
// is refused with a reason.
func TestUpgradeRefuses(t *testing.T) {
	in := server(t, nil)
	out := run(t, purge.Job{Instances: []string{in}, URLs: []string{"https://example.com/"}, Verify: []purge.Expect{purge.ExpectAny}})
	js := write(t, report.JSON, out, report.Options{})
	up, err := report.Upgrade([]byte(js))
	require.NoError(t, err)
	assert.Equal(t, js, string(up))
	for in, want := range map[string]string{
		`{"ok":true`:                     "upgrade a report",
		`[]`:                             "upgrade a report",
		`{"ok":true}`:                    "not a cdnpurge JSON report",
		`{"dry_run":true,"requests":[]}`: "an old dry run",
		`{"ok":true,"verify":[]}`:        "it has no step",
		`{"step":"verify","checks":[{"age":"x"}]}`: `age "x"`,
	} {
		_, err := report.Upgrade([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
}
