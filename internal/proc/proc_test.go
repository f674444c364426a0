package proc

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatWithSpacesAndParensInTheName(t *testing.T) {
	s, err := parseStat(42, "42 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 100 10")
	require.NoError(t, err)
	assert.Equal(t, Stat{ID: ID{Pid: 42, Start: 987654}, Pgid: 4242, State: 'S'}, s)
	_, err = parseStat(1, "garbage")
	assert.Error(t, err)
}

func TestRecordRoundTrips(t *testing.T) {
	self, err := Self()
	require.NoError(t, err)
	assert.True(t, self.Alive())
	back, err := Parse(self.String())
	require.NoError(t, err)
	assert.Equal(t, self, back)
	assert.False(t, ID{Pid: self.Pid, Start: self.Start + 1}.Alive(), "the same pid with another start time is another process")
	_, err = Parse("12")
	assert.Error(t, err)
}

// KillGroup stops the group a recorded leader leads, and nothing when the
// record does not match (another start time: another process).
func TestKillGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	leader, err := Of(cmd.Process.Pid)
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for groupSize(leader.Pid) < 3 { // the shell and its two sleeps
		require.True(t, time.Now().Before(deadline), "the group never had 3 processes")
		time.Sleep(5 * time.Millisecond)
	}

	n, err := KillGroup(ID{Pid: leader.Pid, Start: leader.Start + 1})
	require.NoError(t, err)
	assert.Zero(t, n, "a record of another process stops nothing")
	assert.True(t, leader.Alive())

	n, err = KillGroup(leader)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_ = cmd.Wait()
	for groupSize(leader.Pid) > 0 {
		require.True(t, time.Now().Before(deadline), "the group did not stop")
		time.Sleep(5 * time.Millisecond)
	}
}

func groupSize(pgid int) int {
	n := 0
	out, _ := exec.Command("ps", "-o", "pgid=", "-e").Output()
	for _, f := range splitFields(string(out)) {
		if f == itoa(pgid) {
			n++
		}
	}
	return n
}

func splitFields(s string) []string { return strings.Fields(s) }
func itoa(n int) string             { return strconv.Itoa(n) }
