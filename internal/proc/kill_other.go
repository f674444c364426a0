//go:build !linux

package proc

import "errors"

// KillGroup needs Linux's pidfds to stop only what it means to.
func KillGroup(ID) (int, error) {
	return 0, errors.New("proc: stopping a recorded process group needs Linux")
}
