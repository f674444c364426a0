package report_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// BenchmarkWrite30k writes a report of 30,000 results (10,000 URLs on 3
// instances) in each format: the large-run text and report.Markdown (a line per
// instance), text with every row (--verbose), and report.JSON (every row).
func BenchmarkWrite30k(b *testing.B) {
	var ins []string
	for range 3 {
		ins = append(ins, serverB(b))
	}
	urls := make([]string, 10000)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://example.com/episode/%d", i)
	}
	out, err := purge.Job{Instances: ins, URLs: urls}.Run(b.Context())
	if err != nil || !out.OK() {
		b.Fatal(err, out.Err())
	}
	for _, tc := range []struct {
		name string
		f    report.Format
		o    report.Options
	}{
		{"text", report.Text, report.Options{}},
		{"text-verbose", report.Text, report.Options{Verbose: true}},
		{"markdown", report.Markdown, report.Options{}},
		{"json", report.JSON, report.Options{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if err := report.Write(io.Discard, tc.f, out, tc.o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
