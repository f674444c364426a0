package report

import (
	"fmt"
	"io"
	"testing"

	"github.com/cdnpurge/cdnpurge/purge"
)

// BenchmarkWrite30k writes a report of 30,000 results (10,000 URLs on 3
// instances) in each format: the large-run text and Markdown (a line per
// instance), text with every row (--verbose), and JSON (every row).
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
		f    Format
		o    Options
	}{
		{"text", Text, Options{}},
		{"text-verbose", Text, Options{Verbose: true}},
		{"markdown", Markdown, Options{}},
		{"json", JSON, Options{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if err := Write(io.Discard, tc.f, out, tc.o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
