// Package loopback hands out distinct loopback addresses that share one free
// port, so a local fleet looks like production: N instances, N addresses, the
// same port, found by A records.
package loopback

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Addr returns the i-th fleet address, 127.0.x.y, starting at 127.0.1.1 and
// skipping .0 and .255.
func Addr(i int) string {
	return fmt.Sprintf("127.0.%d.%d", 1+i/254, 1+i%254)
}

// Listen listens on n distinct loopback addresses on one port the kernel
// picked, trying other ports when one is taken on some address.
func Listen(n int) ([]net.Listener, int, error) {
	if n < 1 || n > 254*254 {
		return nil, 0, fmt.Errorf("loopback: %d listeners: want 1 to %d", n, 254*254)
	}
	var lastErr error
	for try := 0; try < 50; try++ {
		first, err := net.Listen("tcp", net.JoinHostPort(Addr(0), "0"))
		if err != nil {
			return nil, 0, fmt.Errorf("loopback: listen on %s: %w", Addr(0), err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{first}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(Addr(i), strconv.Itoa(port)))
			if err != nil {
				lastErr = err
				break
			}
			ls = append(ls, l)
		}
		if len(ls) == n {
			return ls, port, nil
		}
		for _, l := range ls {
			l.Close()
		}
	}
	return nil, 0, errors.Join(errors.New("loopback: no port free on every address"), lastErr)
}

// FreePort returns a port that is free on the first n fleet addresses right
// now, for servers (varnishd) that must bind it themselves.
func FreePort(n int) (int, error) {
	ls, port, err := Listen(n)
	if err != nil {
		return 0, err
	}
	for _, l := range ls {
		l.Close()
	}
	return port, nil
}
