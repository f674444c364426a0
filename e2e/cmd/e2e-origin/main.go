// Command e2e-origin serves the end-to-end fleet's origin (deterministic
// cacheable content and hit counts at /__cdnpurge/hits) for caches started
// elsewhere, such as the Varnish containers of the Dagger module's e2e.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/cdnpurge/cdnpurge/e2e"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	maxAge := flag.Duration("max-age", time.Hour, "how long caches may keep the content")
	flag.Parse()
	s := &http.Server{Addr: *listen, Handler: e2e.NewOriginHandler(*maxAge), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("e2e origin on %s", *listen)
	log.Fatal(s.ListenAndServe())
}
