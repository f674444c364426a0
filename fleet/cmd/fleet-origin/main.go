// Command fleet-origin serves a fleet's origin (deterministic cacheable
// content, and hit counts at /__cdnpurge/hits; see fleet.OriginHandler) for
// caches started elsewhere, such as the Varnish containers of the Dagger
// module's e2e function.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/cdnpurge/cdnpurge/fleet"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	maxAge := flag.Duration("max-age", time.Hour, "how long caches may keep the content")
	flag.Parse()
	s := &http.Server{Addr: *listen, Handler: fleet.NewOriginHandler(*maxAge), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("fleet origin on %s", *listen)
	log.Fatal(s.ListenAndServe())
}
