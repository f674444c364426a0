// Command neverwarm serves N cache instances that never warm: every answer
// says the cache missed ("Cache-Status: neverwarm; fwd=miss"), so a verify
// that waits for hits asks again every round. It listens on N ports the
// kernel chooses on 127.0.0.1 and prints them, ADDR:PORT one a line, then
// serves until killed. ci/verify-memory.sh measures verify --wait against it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 50, "instances")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "neverwarm; fwd=miss")
		w.Header().Set("Content-Length", "0")
	})
	for range *n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(l.Addr())
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { log.Fatal(s.Serve(l)) }()
	}
	_ = os.Stdout.Sync()
	select {}
}
