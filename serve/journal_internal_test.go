package serve

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/cdnpurge/cdnpurge/purge"
)

// The journal's life of a job: accepted (sending), resumed after a crash
// (pending), settled, pruned once old and with nothing pending.
func TestJournalLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := openJournal(path)
	require.NoError(t, err)
	ins := []purge.Instance{{Host: "10.0.0.1", Port: 80}, {Host: "10.0.0.2", Port: 80}}
	old := time.Now().Add(-2 * time.Hour)
	a := &jobRecord{Kind: kindAPI, Created: old, Spec: spec{URLs: []string{"http://e.com/a"}}, Instances: ins, State: stateQueued}
	b := &jobRecord{Kind: kindAPI, Created: old, Spec: spec{URLs: []string{"http://e.com/b"}}, Instances: ins, State: stateQueued}
	v := &jobRecord{Kind: kindVerify, Created: old, Spec: spec{URLs: []string{"http://e.com/v"}, VerifyOnly: true}, Instances: ins, State: stateQueued}
	for _, r := range []*jobRecord{a, b, v} {
		require.NoError(t, j.accept(r))
	}
	require.Equal(t, []uint64{1, 2, 3}, []uint64{a.ID, b.ID, v.ID})
	// a finished: one instance took it, one is owed it.
	a.State, a.Finished = stateDone, old
	require.NoError(t, j.finish(a, []delivery{{Instance: ins[0], State: dDelivered}, {Instance: ins[1], State: dPending, Next: old}}, []byte(`{"ok":false}`)))
	require.NoError(t, j.close())

	// A crash: b and v were never finished. Resumed: b's deliveries are
	// pending now, v (a check) has none.
	j, err = openJournal(path)
	require.NoError(t, err)
	defer j.close()
	n, err := j.resume(time.Now())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	due, total, err := j.due(time.Now(), nil, 10)
	require.NoError(t, err)
	require.Equal(t, 3, total)
	require.ElementsMatch(t, []dueEntry{{1, 1}, {2, 0}, {2, 1}}, due)
	rec, ds, rep, found, err := j.get(2)
	require.NoError(t, err)
	require.True(t, found)
	require.True(t, rec.Interrupted)
	require.Equal(t, stateDone, rec.State)
	require.Len(t, ds, 2)
	require.Nil(t, rep)
	_, ds, _, _, err = j.get(3)
	require.NoError(t, err)
	require.Empty(t, ds)

	// Settle everything but a's second instance; prune what is old.
	for _, e := range []dueEntry{{2, 0}, {2, 1}} {
		_, d, err := j.load(e.id, e.idx)
		require.NoError(t, err)
		d.State = dDelivered
		require.NoError(t, j.record(e.id, e.idx, d))
	}
	pruned, err := j.prune(time.Now().Add(time.Minute)) // resumed jobs finished just now
	require.NoError(t, err)
	require.Equal(t, 2, pruned, "b and v; a still owes a delivery")
	_, _, _, found, err = j.get(2)
	require.NoError(t, err)
	require.False(t, found)
	_, _, rep, found, err = j.get(1)
	require.NoError(t, err)
	require.True(t, found)
	require.JSONEq(t, `{"ok":false}`, string(rep))
}

// A job's report is kept compressed (a purge report is one row per URL and
// instance: it shrinks more than ten times) and read back as written; one
// stored plain (as journals did before) reads as it is.
func TestJournalReportsCompressed(t *testing.T) {
	j, err := openJournal(filepath.Join(t.TempDir(), "journal.db"))
	require.NoError(t, err)
	defer j.close()
	var rows []string
	for i := range 300 {
		rows = append(rows, fmt.Sprintf(`{"instance":"10.0.0.%d:80","url":"http://e.com/p/%d","ok":true,"status":200,"attempts":1,"duration_ms":%d.%03d}`, i%3, i/3, i%7, i))
	}
	report := []byte(`{"ok":true,"results":[` + strings.Join(rows, ",") + `]}`)
	rec := &jobRecord{Kind: kindAPI, Created: time.Now(), Spec: spec{URLs: []string{"http://e.com/p/0"}}, State: stateQueued}
	require.NoError(t, j.accept(rec))
	rec.State = stateDone
	require.NoError(t, j.finish(rec, nil, report))
	_, _, got, found, err := j.get(rec.ID)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, string(report), string(got))
	require.NoError(t, j.view("size", func(tx *bolt.Tx) error {
		stored := tx.Bucket(bucketReports).Get(jobKey(rec.ID))
		require.Less(t, len(stored), len(report)/10, "stored compressed")
		return nil
	}))

	plain := &jobRecord{Kind: kindAPI, Created: time.Now(), Spec: spec{URLs: []string{"http://e.com/q"}}, State: stateDone}
	require.NoError(t, j.accept(plain))
	require.NoError(t, j.update("store a plain report", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReports).Put(jobKey(plain.ID), []byte(`{"ok":false}`))
	}))
	_, _, got, _, err = j.get(plain.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":false}`, string(got))
}
