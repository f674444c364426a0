package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
	"github.com/cdnpurge/cdnpurge/internal/hostile"
	"github.com/cdnpurge/cdnpurge/internal/loopback"
	"github.com/cdnpurge/cdnpurge/purge"
)

// fleet is n HTTP instances on 127.0.x.y, one port, answering after delay,
// listed as A records of "cdn.bench." by a real DNS server.
type fleet struct {
	dns         *dnsserver.Server
	port        int
	conns       atomic.Int64
	reqs        atomic.Int64
	lastArrival atomic.Int64
}

func startFleet(b *testing.B, n int, delay time.Duration) *fleet {
	b.Helper()
	ls, port, err := loopback.Listen(n)
	if err != nil {
		b.Fatal(err)
	}
	d, err := dnsserver.Start("127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	f := &fleet{dns: d, port: port}
	for _, l := range ls {
		if err := d.Add("cdn.bench. 5 IN A " + l.Addr().(*net.TCPAddr).IP.String()); err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f.reqs.Add(1)
				f.lastArrival.Store(time.Now().UnixNano())
				if delay > 0 {
					time.Sleep(delay)
				}
			}),
			ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					f.conns.Add(1)
				}
			},
		}
		go func() { _ = srv.Serve(l) }()
		b.Cleanup(func() { _ = srv.Close() })
	}
	return f
}

// job is a purge of us on this fleet, found by DNS.
func (f *fleet) job(us []string) purge.Job {
	return purge.Job{DNSName: "cdn.bench", Record: purge.RecordA, Port: f.port, Resolver: f.dns.Addr, URLs: us}
}

func urls(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://example.com/episode/%d", i)
	}
	return out
}

// libraryRun is what a Go program does: one Job, discover then purge.
func libraryRun(b *testing.B, j purge.Job, want int) {
	out, err := j.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(out.Instances) != want {
		b.Fatalf("found %d instances, want %d", len(out.Instances), want)
	}
	if err := out.Err(); err != nil {
		b.Fatal(err)
	}
}

func reportMS(b *testing.B, start time.Time) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkFleet50 compares, on one fleet of 50 instances answering after
// 50 ms: the library call, the CLI process, and the seed's bash one-liner
// (sequential, and with xargs -P 64).
func BenchmarkFleet50(b *testing.B) {
	const n = 50
	f := startFleet(b, n, 50*time.Millisecond)
	us := urls(1)
	b.Run("library", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			libraryRun(b, f.job(us), n)
		}
		reportMS(b, start)
	})
	bin := buildCLI(b)
	b.Run("cli", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(bin, "purge", "--url", us[0], "--dns-name", "cdn.bench", "--record", "a",
				"--resolver", f.dns.Addr, "--port", strconv.Itoa(f.port), "--format", "json")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
		reportMS(b, start)
	})
	host, port, _ := net.SplitHostPort(f.dns.Addr)
	dig := fmt.Sprintf("dig @%s -p %s +short cdn.bench A", host, port)
	curl := fmt.Sprintf(`curl -s -o /dev/null -X PURGE -H "Host: example.com" "http://$ip:%d/episode/0"`, f.port)
	for name, script := range map[string]string{
		"bash-sequential": fmt.Sprintf(`for ip in $(%s); do %s; done`, dig, curl),
		"bash-xargs-P64":  fmt.Sprintf(`%s | xargs -P 64 -I{} sh -c 'ip={}; %s'`, dig, curl),
	} {
		b.Run(name, func(b *testing.B) {
			if _, err := exec.LookPath("dig"); err != nil {
				b.Skip("dig is not installed (apt-get install dnsutils)")
			}
			before := f.reqs.Load()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
			}
			reportMS(b, start)
			if got := f.reqs.Load() - before; got != int64(n*b.N) {
				b.Fatalf("bash baseline sent %d requests, want %d", got, n*b.N)
			}
		})
	}
}

// BenchmarkFleet1000 is the library call against 1000 instances answering
// after 50 ms (the DNS answer needs the TCP fallback).
func BenchmarkFleet1000(b *testing.B) {
	const n = 1000
	f := startFleet(b, n, 50*time.Millisecond)
	j := f.job(urls(1))
	libraryRun(b, j, n) // warm the DNS server and the listeners' accept queues
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		libraryRun(b, j, n)
	}
	reportMS(b, start)
}

// BenchmarkManyURLs purges 1000 URLs on 10 instances that answer at once,
// through the CLI process, and reports purges/s, TCP connections opened and
// the process's peak RSS.
func BenchmarkManyURLs(b *testing.B) {
	const n, nURLs = 10, 1000
	f := startFleet(b, n, 0)
	file := filepath.Join(b.TempDir(), "urls.txt")
	fh, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range urls(nURLs) {
		fmt.Fprintln(fh, u)
	}
	fh.Close()
	bin := buildCLI(b)
	b.Run("library", func(b *testing.B) {
		j := f.job(urls(nURLs))
		conns := f.conns.Load()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			libraryRun(b, j, n)
		}
		el := time.Since(start)
		b.ReportMetric(float64(n*nURLs*b.N)/el.Seconds(), "purges/s")
		b.ReportMetric(float64(f.conns.Load()-conns)/float64(b.N), "conns/op")
	})
	b.Run("cli", func(b *testing.B) {
		// GNU time forks (no vfork), so %M is the CLI's own peak RSS, not
		// the benchmark process's.
		if _, err := os.Stat("/usr/bin/time"); err != nil {
			b.Skip("/usr/bin/time is not installed (apt-get install time)")
		}
		var maxKiB int64
		rssFile := filepath.Join(b.TempDir(), "rss")
		conns := f.conns.Load()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("/usr/bin/time", "-f", "%M", "-o", rssFile, bin, "purge", "--urls-file", file,
				"--dns-name", "cdn.bench", "--record", "a", "--resolver", f.dns.Addr, "--port", strconv.Itoa(f.port), "--format", "json")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			raw, err := os.ReadFile(rssFile)
			if err != nil {
				b.Fatal(err)
			}
			kib, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			if err != nil {
				b.Fatalf("time -f %%M wrote %q", raw)
			}
			maxKiB = max(maxKiB, kib)
		}
		el := time.Since(start)
		b.ReportMetric(float64(n*nURLs*b.N)/el.Seconds(), "purges/s")
		b.ReportMetric(float64(f.conns.Load()-conns)/float64(b.N), "conns/op")
		b.ReportMetric(float64(maxKiB)/1024, "peak-RSS-MiB")
	})
}

func buildCLI(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "cdnpurge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkVerify1000 verifies 1 URL on 1000 instances answering after 50 ms
// (the target: within 2 round trips of the slowest, 100 ms) and reports the
// bytes read per instance.
func BenchmarkVerify1000(b *testing.B) {
	const n = 1000
	f := startFleet(b, n, 50*time.Millisecond)
	ctx := context.Background()
	in, err := purge.Discover(ctx, purge.Discovery{Name: "cdn.bench", Record: purge.RecordA, Port: f.port, Resolver: f.dns.Addr})
	if err != nil {
		b.Fatal(err)
	}
	j := purge.Job{URLs: urls(1), VerifyOnly: true, Verify: []purge.Expect{purge.ExpectAny}}
	for _, i := range in {
		j.Instances = append(j.Instances, i.String())
	}
	var bytesRead int64
	var sendPhase time.Duration
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := j.Run(ctx)
		sendPhase += time.Unix(0, f.lastArrival.Load()).Sub(t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := out.Err(); err != nil {
			b.Fatal(err)
		}
		rep := out.Verify[0]
		for k := range rep.Len() {
			bytesRead += rep.Result(k).BytesRead
		}
	}
	reportMS(b, start)
	b.ReportMetric(float64(bytesRead)/float64(n*b.N), "bytes-read/instance")
	// When the last request reached its instance: the rest is its 50 ms.
	b.ReportMetric(float64(sendPhase.Microseconds())/1000/float64(b.N), "last-request-at-ms")
}

// BenchmarkMemory purges 100,000 URLs on 1, 3 and 10 instances (100,000,
// 300,000 and 1,000,000 purges), and 1,000,000 URLs on one instance,
// through the CLI process with --format json to a file, and reports the
// process's peak RSS and time. URLs are streamed from the file into a
// compact list, request heads are written when their batch is, results
// are kept compactly and the report is written row by row, so memory
// grows by about 40 bytes per URL and 12 per result: 10x the purges may
// take 10x the time, never more (no superlinear step).
func BenchmarkMemory(b *testing.B) {
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Skip("/usr/bin/time is not installed (apt-get install time)")
	}
	f := startFleet(b, 10, 0)
	dir := b.TempDir()
	files := map[int]string{}
	for _, n := range []int{100_000, 1_000_000} {
		files[n] = filepath.Join(dir, fmt.Sprintf("urls-%d.txt", n))
		if err := os.WriteFile(files[n], []byte(strings.Join(urls(n), "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := buildCLI(b)
	ins, err := purge.Discover(context.Background(), purge.Discovery{Name: "cdn.bench", Record: purge.RecordA, Port: f.port, Resolver: f.dns.Addr})
	if err != nil {
		b.Fatal(err)
	}
	seconds := map[int]float64{}
	for _, tc := range []struct{ urls, instances int }{{100_000, 1}, {100_000, 3}, {100_000, 10}, {1_000_000, 1}} {
		n := tc.instances
		b.Run(fmt.Sprintf("%dx%d", tc.urls, n), func(b *testing.B) {
			args := []string{"-f", "%M %e", "-o", filepath.Join(dir, "rss"), bin, "purge", "--urls-file", files[tc.urls], "--format", "json"}
			for _, in := range ins[:n] {
				args = append(args, "--instance", in.String())
			}
			var maxKiB int64
			var total float64
			for i := 0; i < b.N; i++ {
				out, err := os.Create(filepath.Join(dir, "report.json"))
				if err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command("/usr/bin/time", args...)
				var stderr strings.Builder
				cmd.Stdout, cmd.Stderr = out, &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v\n%s", err, stderr.String())
				}
				out.Close()
				raw, err := os.ReadFile(filepath.Join(dir, "rss"))
				if err != nil {
					b.Fatal(err)
				}
				var kib int64
				var secs float64
				if _, err := fmt.Sscanf(strings.TrimSpace(string(raw)), "%d %f", &kib, &secs); err != nil {
					b.Fatalf("time wrote %q", raw)
				}
				maxKiB, total = max(maxKiB, kib), total+secs
			}
			purges := float64(tc.urls * n)
			b.ReportMetric(float64(maxKiB)/1024, "peak-RSS-MiB")
			b.ReportMetric(total/float64(b.N), "s/run")
			b.ReportMetric(purges*float64(b.N)/total, "purges/s")
			if tc.urls == 100_000 {
				seconds[n] = total / float64(b.N)
				if n == 10 && seconds[1] > 0 {
					b.ReportMetric(seconds[10]/seconds[1], "time-vs-100k")
				}
			}
		})
	}
}

// BenchmarkFirstRequestOnly purges 64 URLs, with the library's default
// settings, on an instance that answers the first request of each
// connection and then stays silent (no pipelining, no keep-alive, no
// Connection: close). The wire learns that after one stall: the run takes
// about one timeout (5 s by default), not one per URL.
func BenchmarkFirstRequestOnly(b *testing.B) {
	in := hostile.Start(b, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if r.Seq > 0 {
			c.Hold()
			return
		}
		c.Answer(200, "")
	}))
	j := purge.Job{URLs: urls(64), Instances: []string{in.Addr}}
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		out, err := j.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := out.Err(); err != nil {
			b.Fatal(err, out.Purge.Summary())
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
}
