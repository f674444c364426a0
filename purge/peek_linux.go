package purge

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peek says, without reading or blocking, whether the kernel holds bytes of
// c nobody read (1), whether the peer has closed or reset it (-1), or
// neither (0).
func peek(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	state := 0
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		// recvfrom(2) itself: unix.Recvfrom allocates the sender's address.
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR:
			// Nothing waiting.
		case errno != 0:
			// Reset by the peer (ECONNRESET), or another error: the
			// connection cannot carry a request.
			state = -1
		case n > 0:
			state = 1
		default:
			state = -1
		}
		return true
	})
	return state
}
