package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/serve/api"
)

// Benchmarks of serve against its baselines, measured in the same run on
// the same 3 real varnishd (ci/bench.sh runs them):
//
//	Latency:    a 1-URL purge through serve (sync, journal on), beside the
//	            library's own purge phase of the same job (the report's
//	            duration): what serve adds. Target: under 5 ms.
//	Throughput: 10,000 URLs as 100 jobs of 100 from 16 clients at once
//	            through serve, beside the CLI purging the same 10,000 URLs
//	            in one run. Target: serve at least 0.8 x the CLI.
//	RSS:        serve's peak RSS after 50 clients at once sent 100 URLs
//	            each. Target: under 64 MiB.
func BenchmarkServe(b *testing.B) {
	f := startOwnFleet(b, 3, "", "")
	median := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}

	b.Run("Latency", func(b *testing.B) {
		p := startServe(b, filepath.Join(b.TempDir(), "journal.db"), nil, f.Args()...)
		c := &http.Client{}
		var rtt, phase, added []float64
		body, _ := json.Marshal(api.Request{URLs: []string{"http://example.com/latency"}})
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			resp, err := c.Post(p.url(api.PathPurge), "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var rep struct {
				OK    bool `json:"ok"`
				Steps []struct {
					DurationMS float64 `json:"duration_ms"`
				} `json:"steps"`
			}
			err = json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
			d := float64(time.Since(start).Microseconds()) / 1000
			if err != nil || !rep.OK || len(rep.Steps) != 1 {
				b.Fatalf("purge through serve: %v %+v", err, rep)
			}
			step := rep.Steps[0].DurationMS
			rtt, phase, added = append(rtt, d), append(phase, step), append(added, d-step)
		}
		b.StopTimer()
		// The library on its own, for scale: discovery and the purge.
		var lib []float64
		j := purge.Job{DNSName: f.Name, Record: purge.RecordA, Port: f.port, Resolver: f.dns.Addr, URLs: []string{"http://example.com/latency"}}
		for range max(10, len(rtt)/4) {
			start := time.Now()
			if out, err := j.Run(context.Background()); err != nil || !out.OK() {
				b.Fatalf("library: %v", err)
			}
			lib = append(lib, float64(time.Since(start).Microseconds())/1000)
		}
		b.ReportMetric(median(rtt), "serve-ms")
		b.ReportMetric(median(phase), "purge-phase-ms")
		b.ReportMetric(median(added), "added-ms")
		b.ReportMetric(median(lib), "library-run-ms")
		p.stop(b)
	})

	b.Run("Throughput", func(b *testing.B) {
		dir := b.TempDir()
		all := urls("throughput", 10000)
		file := filepath.Join(dir, "urls.txt")
		if err := os.WriteFile(file, []byte(strings.Join(all, "\n")), 0o600); err != nil {
			b.Fatal(err)
		}
		var cliRate, serveRate, cliCPU, serveCPU []float64
		for n := 0; b.Loop(); n++ {
			// The CLI: one run of all 10,000 URLs.
			args := append([]string{"purge", "--urls-file", file, "--format", "json"}, f.Args()[:8]...)
			cmd := exec.Command(cli(b), args...)
			cmd.Stdout = nil
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("cli: %v\n%s", err, out[:min(len(out), 2000)])
			}
			cliRate = append(cliRate, 30000/time.Since(start).Seconds())
			cliCPU = append(cliCPU, float64((cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Microseconds())/30000)

			// serve: 100 jobs of 100 URLs from 16 clients, journal on.
			p := startServe(b, filepath.Join(dir, fmt.Sprintf("journal-%d.db", n)), nil, f.Args()...)
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			jobs := make(chan []string, 100)
			for i := range 100 {
				jobs <- all[i*100 : (i+1)*100]
			}
			close(jobs)
			var wg sync.WaitGroup
			start = time.Now()
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &api.Client{URL: p.url(""), HTTP: hc}
					for list := range jobs {
						res, err := c.Purge(context.Background(), api.Request{URLs: list}, "json", false)
						if err != nil || !res.OK() {
							b.Errorf("serve job: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			serveRate = append(serveRate, 30000/time.Since(start).Seconds())
			serveCPU = append(serveCPU, p.cpu(b).Seconds()*1e6/30000)
			p.stop(b)
		}
		b.ReportMetric(median(cliRate), "cli-purges/s")
		b.ReportMetric(median(serveRate), "serve-purges/s")
		b.ReportMetric(median(serveRate)/median(cliRate), "serve/cli")
		b.ReportMetric(median(cliCPU), "cli-cpu-us/purge")
		b.ReportMetric(median(serveCPU), "serve-cpu-us/purge")
	})

	b.Run("RSS", func(b *testing.B) {
		var peak []float64
		for n := 0; b.Loop(); n++ {
			p := startServe(b, filepath.Join(b.TempDir(), "journal.db"), nil, f.Args()...)
			load(b, p, 50, 10, 10, fmt.Sprintf("rss/%d", n))
			peak = append(peak, float64(p.rssKiB(b))/1024)
			p.stop(b)
		}
		b.ReportMetric(slices.Max(peak), "peak-RSS-MiB")
	})
}
