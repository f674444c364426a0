package serve

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cdnpurge/cdnpurge/purge"
)

// The journal is a bbolt file (one writer at a time, every change one
// transaction, synced before it returns). It holds, per job, what was
// asked and where it goes, and per (job, instance) the delivery state, so
// that nothing accepted is lost to a crash: what the file does not say was
// delivered is sent again.
//
//	jobs        id (8 bytes, big endian, in acceptance order) -> jobRecord (JSON)
//	deliveries  id + instance index (4 bytes)                 -> delivery (JSON)
//	pending     id + instance index                           -> when to replay (8 bytes) + instance
//	reports     id                                            -> the job's JSON report, gzipped
var (
	bucketJobs       = []byte("jobs")
	bucketDeliveries = []byte("deliveries")
	bucketPending    = []byte("pending")
	bucketReports    = []byte("reports")
	bucketMeta       = []byte("meta")
	keyFormat        = []byte("format")
)

// journalFormat is the layout version written in meta/format.
const journalFormat = "cdnpurge-journal-1"

// Job states.
const (
	stateQueued  = "queued"
	stateRunning = "running"
	stateDone    = "done"
)

// Delivery states.
const (
	// sending: the fan-out has it; a restart finds it still sending and
	// sends it again.
	dSending   = "sending"
	dDelivered = "delivered" // every URL taken
	dPending   = "pending"   // some URLs not taken: replayed with backoff
	dRefused   = "refused"   // the instance answered, and refused (4xx): not replayed
	dGone      = "gone"      // the instance left discovery before it took them
	dExpired   = "expired"   // still not taken after the replay period
)

// jobRecord is what the journal holds about a job.
type jobRecord struct {
	ID       uint64    `json:"id"`
	Kind     string    `json:"kind"` // api, verify, transparent
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitzero"`
	Who      string    `json:"who"`    // the API token's name, or "-"
	Source   string    `json:"source"` // the client's address
	Spec     spec      `json:"spec"`
	// Instances are where the job goes, as discovery found them when it
	// was accepted.
	Instances []purge.Instance `json:"instances"`
	Skipped   []purge.Skipped  `json:"skipped,omitempty"`
	State     string           `json:"state"`
	OK        bool             `json:"ok"`
	Summary   string           `json:"summary,omitempty"`
	// Interrupted: the serve stopped (or died) before the fan-out ended;
	// every delivery it had not recorded was replayed.
	Interrupted bool `json:"interrupted,omitempty"`
}

// spec is what a job sends, as the request gave it.
type spec struct {
	URLs           []string       `json:"urls"`
	Tags           []string       `json:"tags,omitempty"`
	Soft           bool           `json:"soft,omitempty"`
	Ban            string         `json:"ban,omitempty"`
	BanContentType string         `json:"ban_content_type,omitempty"`
	Method         string         `json:"method,omitempty"`
	Headers        []string       `json:"headers,omitempty"`
	RawURLs        bool           `json:"raw_urls,omitempty"`
	Verify         []purge.Expect `json:"verify,omitempty"`
	VerifyURLs     []string       `json:"verify_urls,omitempty"`
	VerifyOnly     bool           `json:"verify_only,omitempty"`
	VerifyMethod   string         `json:"verify_method,omitempty"`
	Wait           time.Duration  `json:"wait,omitempty"`
	Interval       time.Duration  `json:"interval,omitempty"`
	// Token is an app's own purge token from a transparent request, kept
	// for replays when it is not the serve's own. Never shown.
	Token string `json:"token,omitempty"`
}

// delivery is one instance's share of a job.
type delivery struct {
	Instance purge.Instance `json:"instance"`
	State    string         `json:"state"`
	// Pending lists the URL indexes not yet taken; nil with state sending
	// or pending means all.
	Pending   []int32   `json:"pending,omitempty"`
	Replays   int       `json:"replays"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Done      time.Time `json:"done,omitzero"`
	// History holds the last replays, newest last.
	History []replay `json:"history,omitempty"`
}

// replay is one replay of a delivery.
type replay struct {
	At     time.Time `json:"at"`
	URLs   int       `json:"urls"`
	Taken  int       `json:"taken"`
	Status string    `json:"outcome"`
	Error  string    `json:"error,omitempty"`
}

// maxHistory bounds the replays kept per delivery.
const maxHistory = 20

// JournalError is a journal that cannot be opened or written: the serve
// stops, and what it had accepted stays in the file.
type JournalError struct {
	Path string
	Op   string
	Err  error
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("journal %s: %s: %v", e.Path, e.Op, e.Err)
}

func (e *JournalError) Unwrap() error { return e.Err }

type journal struct {
	path string
	db   *bolt.DB
	// Writes are group-committed: one writer takes every change waiting
	// and commits them in one transaction (one sync), so a lone change
	// waits for nothing and many at once share a sync. (bbolt's own Batch
	// waits up to 10 ms for company, which a 1-URL purge would feel.)
	ops  chan *op
	quit chan struct{}
	done chan struct{}
	// zw are gzip writers for reports, kept for the next.
	zw sync.Pool
}

// op is one change waiting for the writer.
type op struct {
	fn  func(tx *bolt.Tx) error
	err chan error
}

// openJournal opens (or creates) the journal and checks every page of it.
func openJournal(path string) (j *journal, err error) {
	fail := func(op string, err error) (*journal, error) { return nil, &JournalError{Path: path, Op: op, Err: err} }
	db, err := boltOpen(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fail("open", errors.New("locked by another process (is another cdnpurge serve using it?)"))
	}
	if err != nil {
		return fail("open", fmt.Errorf("%w: the file is not a journal or is damaged; it was left as it is", err))
	}
	defer func() {
		if r := recover(); r != nil {
			_ = db.Close()
			j, err = fail("check", fmt.Errorf("damaged: %v; the file was left as it is", r))
		}
	}()
	err = db.Update(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, e)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("damaged: %w; the file was left as it is", errors.Join(errs...))
		}
		meta := tx.Bucket(bucketMeta)
		if meta != nil {
			if f := string(meta.Get(keyFormat)); f != journalFormat {
				return fmt.Errorf("format %q: not a journal this version of cdnpurge writes (%s)", f, journalFormat)
			}
		} else if tx.Bucket(bucketJobs) != nil || firstBucket(tx) != nil {
			return errors.New("a bbolt file, but not a cdnpurge journal; the file was left as it is")
		}
		for _, b := range [][]byte{bucketMeta, bucketJobs, bucketDeliveries, bucketPending, bucketReports} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(journalFormat))
	})
	if err != nil {
		_ = db.Close()
		return fail("open", err)
	}
	j = &journal{path: path, db: db, ops: make(chan *op, 256), quit: make(chan struct{}), done: make(chan struct{})}
	go j.writer()
	return j, nil
}

// maxGroup bounds the changes committed in one transaction.
const maxGroup = 256

// writer commits what is waiting, in groups, until close.
func (j *journal) writer() {
	defer close(j.done)
	group := make([]*op, 0, maxGroup)
	for {
		select {
		case <-j.quit:
			return
		case o := <-j.ops:
			group = append(group[:0], o)
		}
	more:
		for len(group) < maxGroup {
			select {
			case o := <-j.ops:
				group = append(group, o)
			default:
				break more
			}
		}
		if err := j.commit(group); err == nil || len(group) == 1 {
			for _, o := range group {
				o.err <- err
			}
			continue
		}
		for _, o := range group {
			o.err <- j.commit([]*op{o})
		}
	}
}

// commit runs a group of changes in one transaction; if it fails, each
// change is tried alone, so that one bad change fails only itself.
func (j *journal) commit(group []*op) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged: %v", r)
		}
	}()
	err = j.db.Update(func(tx *bolt.Tx) error {
		for _, o := range group {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// boltOpen opens the file; bbolt panics on some damage (a freelist page
// that is not one), which is an error here.
func boltOpen(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
}

func firstBucket(tx *bolt.Tx) []byte {
	k, _ := tx.Cursor().First()
	return k
}

func (j *journal) close() error {
	close(j.quit)
	<-j.done
	return j.db.Close()
}

// errClosed: a change came after the journal was closed.
var errClosed = errors.New("closed")

// update runs fn in a write transaction, with the other changes waiting
// at the same time (one sync for all), and returns once it is on disk.
func (j *journal) update(what string, fn func(tx *bolt.Tx) error) error {
	o := &op{fn: fn, err: make(chan error, 1)}
	select {
	case j.ops <- o:
	case <-j.done:
		return &JournalError{Path: j.path, Op: what, Err: errClosed}
	}
	var err error
	select {
	case err = <-o.err:
	case <-j.done:
		select {
		case err = <-o.err:
		default:
			err = errClosed
		}
	}
	if err != nil {
		return &JournalError{Path: j.path, Op: what, Err: err}
	}
	return nil
}

func (j *journal) view(op string, fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &JournalError{Path: j.path, Op: op, Err: fmt.Errorf("damaged: %v", r)}
		}
	}()
	if err := j.db.View(fn); err != nil {
		return &JournalError{Path: j.path, Op: op, Err: err}
	}
	return nil
}

func jobKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func deliveryKey(id uint64, i int) []byte {
	return binary.BigEndian.AppendUint32(jobKey(id), uint32(i))
}

func splitKey(k []byte) (uint64, int) {
	return binary.BigEndian.Uint64(k[:8]), int(binary.BigEndian.Uint32(k[8:12]))
}

func idString(id uint64) string { return strconv.FormatUint(id, 10) }

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func pendingValue(next time.Time, in purge.Instance) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(next.UnixNano())), in.String()...)
}

// accept records a new job, before anything is sent: its record and one
// delivery per instance, in state sending. It sets rec.ID.
func (j *journal) accept(rec *jobRecord) error {
	return j.update("record a new job", func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		id, err := jobs.NextSequence()
		if err != nil {
			return err
		}
		rec.ID = id
		if err := putJSON(jobs, jobKey(id), rec); err != nil {
			return err
		}
		ds := tx.Bucket(bucketDeliveries)
		if rec.Spec.VerifyOnly {
			return nil // a check changes nothing: no delivery to track
		}
		for i, in := range rec.Instances {
			if err := putJSON(ds, deliveryKey(id, i), delivery{Instance: in, State: dSending}); err != nil {
				return err
			}
		}
		return nil
	})
}

// finish records a job's end: its record, each instance's delivery (those
// still to replay go in pending), and its report.
func (j *journal) finish(rec *jobRecord, ds []delivery, report []byte) error {
	if report != nil {
		report = j.pack(report) // here, not in the transaction every change waits for
	}
	return j.update("record a job's outcome", func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketJobs), jobKey(rec.ID), rec); err != nil {
			return err
		}
		db, pb := tx.Bucket(bucketDeliveries), tx.Bucket(bucketPending)
		for i := range ds {
			k := deliveryKey(rec.ID, i)
			if err := putJSON(db, k, ds[i]); err != nil {
				return err
			}
			if ds[i].State == dPending {
				if err := pb.Put(k, pendingValue(ds[i].Next, ds[i].Instance)); err != nil {
					return err
				}
			}
		}
		if report != nil {
			return tx.Bucket(bucketReports).Put(jobKey(rec.ID), report)
		}
		return nil
	})
}

// resume finds the jobs a stopped serve left queued or running: each is
// marked done and interrupted, and every delivery still sending becomes
// pending now. It returns the jobs resumed.
func (j *journal) resume(now time.Time) (int, error) {
	n := 0
	err := j.update("resume", func(tx *bolt.Tx) error {
		n = 0
		jobs, db, pb := tx.Bucket(bucketJobs), tx.Bucket(bucketDeliveries), tx.Bucket(bucketPending)
		var open []*jobRecord
		err := jobs.ForEach(func(k, v []byte) error {
			var rec jobRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("job %x: %w", k, err)
			}
			if rec.State != stateDone {
				open = append(open, &rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, rec := range open {
			rec.State, rec.Interrupted, rec.Finished = stateDone, true, now
			if rec.Summary == "" {
				rec.Summary = "interrupted: the serve stopped before the fan-out ended; deliveries not recorded are replayed"
			}
			if err := putJSON(jobs, jobKey(rec.ID), rec); err != nil {
				return err
			}
			for i := range rec.Instances {
				k := deliveryKey(rec.ID, i)
				v := db.Get(k)
				if v == nil {
					continue // a verify job: nothing to deliver
				}
				var d delivery
				if json.Unmarshal(v, &d) != nil {
					d = delivery{Instance: rec.Instances[i], State: dSending}
				}
				if d.State != dSending {
					continue
				}
				d.State, d.Next = dPending, now
				if err := putJSON(db, k, d); err != nil {
					return err
				}
				if err := pb.Put(k, pendingValue(d.Next, d.Instance)); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	return n, err
}

// dueEntry is a delivery due for a replay.
type dueEntry struct {
	id  uint64
	idx int
}

// due lists the pending deliveries due at now, or whose instance is in
// back (it just took another job), at most limit.
func (j *journal) due(now time.Time, back map[string]bool, limit int) ([]dueEntry, int, error) {
	var out []dueEntry
	total := 0
	err := j.view("list pending replays", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			total++
			if len(out) >= limit || len(v) < 8 || len(k) != 12 {
				return nil
			}
			next := time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
			if !next.After(now) || back[string(v[8:])] {
				id, idx := splitKey(k)
				out = append(out, dueEntry{id, idx})
			}
			return nil
		})
	})
	return out, total, err
}

// load reads a job and one of its deliveries.
func (j *journal) load(id uint64, idx int) (*jobRecord, *delivery, error) {
	var rec jobRecord
	var d delivery
	err := j.view("read a job", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(jobKey(id))
		if v == nil {
			return fmt.Errorf("job %d: not in the journal", id)
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		dv := tx.Bucket(bucketDeliveries).Get(deliveryKey(id, idx))
		if dv == nil {
			return fmt.Errorf("job %d: no delivery %d", id, idx)
		}
		return json.Unmarshal(dv, &d)
	})
	if err != nil {
		return nil, nil, err
	}
	return &rec, &d, nil
}

// record stores a delivery after a replay: still pending (with its next
// time), or settled.
func (j *journal) record(id uint64, idx int, d *delivery) error {
	return j.update("record a replay", func(tx *bolt.Tx) error {
		k := deliveryKey(id, idx)
		if err := putJSON(tx.Bucket(bucketDeliveries), k, d); err != nil {
			return err
		}
		pb := tx.Bucket(bucketPending)
		if d.State == dPending {
			return pb.Put(k, pendingValue(d.Next, d.Instance))
		}
		return pb.Delete(k)
	})
}

// get reads a job, its deliveries and its report; found is false when the
// journal has no such job.
func (j *journal) get(id uint64) (rec *jobRecord, ds []delivery, report []byte, found bool, err error) {
	err = j.view("read a job", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(jobKey(id))
		if v == nil {
			return nil
		}
		found = true
		rec = &jobRecord{}
		if err := json.Unmarshal(v, rec); err != nil {
			return err
		}
		c := tx.Bucket(bucketDeliveries).Cursor()
		prefix := jobKey(id)
		for k, v := c.Seek(prefix); len(k) == 12 && string(k[:8]) == string(prefix); k, v = c.Next() {
			var d delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			ds = append(ds, d)
		}
		if r := tx.Bucket(bucketReports).Get(prefix); r != nil {
			var err error
			if report, err = unpack(r); err != nil {
				return fmt.Errorf("job %d's report: %w", id, err)
			}
		}
		return nil
	})
	return rec, ds, report, found, err
}

// prune deletes jobs finished before cutoff that have nothing pending.
func (j *journal) prune(cutoff time.Time) (int, error) {
	n := 0
	err := j.update("prune old jobs", func(tx *bolt.Tx) error {
		n = 0
		jobs, db, pb, rb := tx.Bucket(bucketJobs), tx.Bucket(bucketDeliveries), tx.Bucket(bucketPending), tx.Bucket(bucketReports)
		var old [][]byte
		err := jobs.ForEach(func(k, v []byte) error {
			var rec struct {
				State    string    `json:"state"`
				Created  time.Time `json:"created"`
				Finished time.Time `json:"finished"`
			}
			if json.Unmarshal(v, &rec) != nil {
				return nil
			}
			if rec.Created.After(cutoff) {
				return errStopScan // keys are in acceptance order: the rest are newer
			}
			if rec.State != stateDone || rec.Finished.After(cutoff) {
				return nil
			}
			c := pb.Cursor()
			if pk, _ := c.Seek(k); len(pk) == 12 && string(pk[:8]) == string(k) {
				return nil // replays pending: kept
			}
			old = append(old, append([]byte(nil), k...))
			return nil
		})
		if err != nil && !errors.Is(err, errStopScan) {
			return err
		}
		for _, k := range old {
			c := db.Cursor()
			var dks [][]byte
			for dk, _ := c.Seek(k); len(dk) == 12 && string(dk[:8]) == string(k); dk, _ = c.Next() {
				dks = append(dks, append([]byte(nil), dk...))
			}
			for _, dk := range dks {
				if err := db.Delete(dk); err != nil {
					return err
				}
			}
			if err := rb.Delete(k); err != nil {
				return err
			}
			if err := jobs.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// errStopScan ends a ForEach early.
var errStopScan = errors.New("stop")

// size is the journal file's size in bytes.
func (j *journal) size() int64 {
	fi, err := os.Stat(j.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// pack compresses a report for the journal: a purge report's JSON, one
// row per URL and instance, shrinks more than ten times (100 URLs on 3
// instances: 42 KB, 2.7 KB), so a job writes fewer pages and the file
// grows less.
func (j *journal) pack(report []byte) []byte {
	zw, _ := j.zw.Get().(*gzip.Writer)
	var b bytes.Buffer
	b.Grow(len(report)/8 + 64)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&b, gzip.BestSpeed)
	} else {
		zw.Reset(&b)
	}
	_, _ = zw.Write(report) // a bytes.Buffer takes every byte
	_ = zw.Close()
	j.zw.Put(zw)
	return b.Bytes()
}

// unpack returns a report as pack stored it (or as it was stored before
// reports were compressed: JSON as it is).
func unpack(stored []byte) ([]byte, error) {
	if len(stored) < 2 || stored[0] != 0x1f || stored[1] != 0x8b {
		return append([]byte(nil), stored...), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(stored))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
