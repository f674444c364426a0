package serve

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cdnpurge/cdnpurge/purge"
)

// StoreFinishedJob writes to the journal at path a finished purge job of
// urls on instances whose report is stored as the bytes given, as a serve
// of an earlier release stored it (plain JSON, in the shape of its day),
// and returns the job's ID.
func StoreFinishedJob(path string, urls []string, instances []purge.Instance, ok bool, report []byte) (string, error) {
	j, err := openJournal(path)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	rec := &jobRecord{Kind: kindAPI, Created: now, Who: "-", Source: "127.0.0.1:1", Spec: spec{URLs: urls}, Instances: instances, State: stateQueued}
	if err := j.accept(rec); err != nil {
		return "", err
	}
	rec.State, rec.Finished, rec.OK, rec.Summary = stateDone, now, ok, "ok"
	ds := make([]delivery, len(instances))
	for i, in := range instances {
		ds[i] = delivery{Instance: in, State: dDelivered}
	}
	if err := j.finish(rec, ds, nil); err != nil {
		return "", err
	}
	err = j.update("store a report as an earlier release did", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReports).Put(jobKey(rec.ID), report)
	})
	return idString(rec.ID), errors.Join(err, j.close())
}
