package purge

import (
	"net"

	"golang.org/x/sys/unix"
)

// peek says, without reading or blocking, whether the kernel holds bytes of
// c nobody read (1), whether the peer has closed it (-1), or neither (0).
func peek(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	state := 0
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case n > 0:
			state = 1
		case n == 0 && err == nil:
			state = -1
		}
		return true
	})
	return state
}
