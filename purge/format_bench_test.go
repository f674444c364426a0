package purge

import (
	"fmt"
	"io"
	"testing"
	"time"
)

func BenchmarkReportWrite(b *testing.B) {
	rep := &Report{Method: "PURGE"}
	for i := 0; i < 3; i++ {
		rep.Instances = append(rep.Instances, fmt.Sprintf("[fdcd::%d]:9000", i))
	}
	for u := 0; u < 10000; u++ {
		url := fmt.Sprintf("https://bench.example/episode/%d", u)
		rep.URLs = append(rep.URLs, url)
		for _, in := range rep.Instances {
			rep.Results = append(rep.Results, Result{URL: url, Instance: in, Status: 200, OK: true, Attempts: 1, Duration: time.Millisecond, DurationMS: 1})
		}
	}
	for _, f := range []Format{FormatJSON, FormatText, FormatMarkdown} {
		b.Run(string(f), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := rep.Write(io.Discard, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
