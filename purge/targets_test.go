package purge

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Find then RunOn sends exactly where Find found, and RunOn on a subset
// reaches only that subset, with no source of instances needed.
func TestFindThenRunOn(t *testing.T) {
	a, b := startInstance(t, "127.0.0.1", nil), startInstance(t, "127.0.0.1", nil)
	j := job([]string{"http://example.com/x"}, a.addr, b.addr)
	found, err := j.Find(context.Background())
	require.NoError(t, err)
	require.Len(t, found.Instances, 2)
	require.Empty(t, a.requests(), "Find sends nothing")

	out, err := j.RunOn(context.Background(), found)
	require.NoError(t, err)
	require.NoError(t, out.Err())
	require.Len(t, a.requests(), 1)
	require.Len(t, b.requests(), 1)

	// One instance only, from a job without a source (a replay).
	j.Instances = nil
	out, err = j.RunOn(context.Background(), Targets{Instances: found.Instances[1:]})
	require.NoError(t, err)
	require.NoError(t, out.Err())
	require.Equal(t, found.Instances[1:], out.Purge.Instances)
	require.Equal(t, 1, len(a.requests())+len(b.requests())-2, "one more request, to one instance")

	_, err = j.RunOn(context.Background(), Targets{})
	var je *JobError
	require.ErrorAs(t, err, &je)
	require.ErrorAs(t, Job{Instances: []string{a.addr}}.Check(), &je, "no URL")
	require.NoError(t, job([]string{"http://example.com/"}, a.addr).Check())
}

// An invalidation header is the job's own only when the job does what it
// does; otherwise it is sent as given (a broadcaster forwards an app's
// FOSHttpCache-style BAN or xkey PURGE this way).
func TestInvalidationHeadersPassWhenTheJobDoesNotSetThem(t *testing.T) {
	in := startInstance(t, "127.0.0.1", nil)
	j := job([]string{"http://example.com/"}, in.addr)
	j.Method = "BAN"
	j.Headers = []string{"X-Url: ^/a", "X-Host: ^example\\.com$", "xkey-purge: t1"}
	run(t, j)
	h := in.requests()[0].Header
	require.Equal(t, "^/a", h.Get("X-Url"))
	require.Equal(t, "^example\\.com$", h.Get("X-Host"))
	require.Equal(t, "t1", h.Get("Xkey-Purge"))

	for _, bad := range []Job{
		{URLs: []string{"http://e.com/"}, Instances: []string{in.addr}, Ban: "^/", Headers: []string{"X-Url: ^/b"}},
		{URLs: []string{"http://e.com/"}, Instances: []string{in.addr}, Tags: []string{"t"}, Headers: []string{"Xkey-Purge: u"}},
		{URLs: []string{"http://e.com/"}, Instances: []string{in.addr}, Soft: true, Headers: []string{"Purge-Soft: 1"}},
		{URLs: []string{"http://e.com/"}, Instances: []string{in.addr}, Headers: []string{"Connection: close"}},
	} {
		err := bad.Check()
		require.Error(t, err)
		require.Contains(t, err.Error(), "sets it itself")
		require.True(t, errors.As(err, new(*JobError)))
	}
}
