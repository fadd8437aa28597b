package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// Job states.
const (
	jobRunning = "running"
	jobDone    = "done"
	jobFailed  = "failed"
)

// jobVersion is the version of the stored job record.
const jobVersion = 1

// job is a bulk replay job, in BucketReplayJobs under its id (msgpack).
type job struct {
	V     int    `msgpack:"v"`
	ID    string `msgpack:"id"`
	State string `msgpack:"state"`
	// Filter selects the records; its State is always dead.
	Filter jobFilter `msgpack:"filter"`
	// UpTo is the last DLQ sequence when the job was created: records
	// dead-lettered later (among them replays of this job that failed
	// again) are not part of it.
	UpTo     uint64 `msgpack:"up_to"`
	Matched  int    `msgpack:"matched"`
	Replayed int    `msgpack:"replayed"`
	Skipped  int    `msgpack:"skipped"`
	Failed   int    `msgpack:"failed"`
	// Cursor is the DLQ sequence to continue from.
	Cursor uint64 `msgpack:"cursor"`
	// Owner is the runner that holds the job until LeaseUntil; "" when
	// nobody does.
	Owner      string    `msgpack:"owner"`
	LeaseUntil time.Time `msgpack:"lease_until"`
	CreatedAt  time.Time `msgpack:"created_at"`
	UpdatedAt  time.Time `msgpack:"updated_at"`
	Error      string    `msgpack:"error"`
}

// jobFilter is a Filter as a job stores it.
type jobFilter struct {
	Endpoint string    `msgpack:"endpoint"`
	Reason   string    `msgpack:"reason"`
	Type     string    `msgpack:"type"`
	State    string    `msgpack:"state"`
	Since    time.Time `msgpack:"since"`
	Until    time.Time `msgpack:"until"`
}

func (f jobFilter) filter() Filter {
	return Filter{Endpoint: f.Endpoint, Reason: f.Reason, Type: f.Type, State: f.State, Since: f.Since, Until: f.Until}
}

// jobView is a job as GET /v1/dlq/replays/{job} shows it.
type jobView struct {
	Job       string     `json:"job"`
	State     string     `json:"state"`
	Matched   int        `json:"matched"`
	Replayed  int        `json:"replayed"`
	Skipped   int        `json:"skipped"`
	Failed    int        `json:"failed"`
	Filter    filterJSON `json:"filter"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Error     string     `json:"error,omitempty"`
}

func (j *job) view() jobView {
	return jobView{
		Job: j.ID, State: j.State, Matched: j.Matched, Replayed: j.Replayed, Skipped: j.Skipped, Failed: j.Failed,
		Filter: j.Filter.filter().toJSON(), CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC(), Error: j.Error,
	}
}

// Jobs are stored with streams' versioned codec.
func (j *job) EnvelopeVersion() (int, int) { return j.V, jobVersion }
func (j *job) SetEnvelopeVersion()         { j.V = jobVersion }

func encodeJob(j *job) ([]byte, error) {
	b, err := streams.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode replay job %s: %w", j.ID, err)
	}
	return b, nil
}

func decodeJob(b []byte) (*job, error) {
	j := new(job)
	if err := streams.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("replay job: %w", err)
	}
	return j, nil
}

// getJob reads job id and its revision; an unknown id is
// httpjson.ErrNotFound.
func (s *Service) getJob(ctx context.Context, id string) (*job, uint64, error) {
	e, err := s.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("replay job %s: %w", id, httpjson.ErrNotFound)
	}
	if err != nil {
		return nil, 0, storeErr("read replay job", err)
	}
	j, err := decodeJob(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return j, e.Revision(), nil
}

// createJob stores a job replaying the dead records that match f, counted
// now, and wakes this process's runner. f.State other than dead matches
// nothing to replay: such a job is done at once.
func (s *Service) createJob(ctx context.Context, f Filter) (*job, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	wantDead := f.State == "" || f.State == streams.DLQStateDead
	f.State = streams.DLQStateDead
	info, err := s.dlq.Info(ctx)
	if err != nil {
		return nil, storeErr("read dlq", err)
	}
	now := s.now()
	j := &job{
		ID: s.cfg.NewJobID(), State: jobRunning, Filter: jobFilter(f), UpTo: info.State.LastSeq,
		Cursor: 1, CreatedAt: now, UpdatedAt: now,
	}
	if wantDead && j.UpTo > 0 {
		if j.Matched, err = s.count(ctx, f, j.UpTo); err != nil {
			return nil, err
		}
	}
	if j.Matched == 0 {
		j.State = jobDone
	}
	b, err := encodeJob(j)
	if err != nil {
		return nil, err
	}
	if _, err := s.jobs.Create(ctx, j.ID, b); err != nil {
		return nil, storeErr("create replay job", err)
	}
	s.cfg.Logger.Info("replay job created", "job", j.ID, "matched", j.Matched, "up_to", j.UpTo)
	if j.State == jobRunning {
		select {
		case s.nudge <- struct{}{}:
		default:
		}
	}
	return j, nil
}

// count counts the records up to DLQ sequence upTo that match f, from the
// state bucket, which holds every field a filter looks at: one pass over
// small values instead of reading every record.
func (s *Service) count(ctx context.Context, f Filter, upTo uint64) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.states.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, storeErr("read dead-letter states", err)
	}
	defer func() { _ = w.Stop() }()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return 0, storeErr("read dead-letter states", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return 0, storeErr("read dead-letter states", errors.New("watch closed"))
			}
			if e == nil {
				return n, nil
			}
			var st streams.DLQState
			if err := streams.Unmarshal(e.Value(), &st); err != nil {
				continue
			}
			if st.Seq <= upTo && f.matchFields(st.EndpointID, st.Reason, st.EventType, st.DeadAt) && f.matchState(st.State) {
				n++
			}
		}
	}
}
