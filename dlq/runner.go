package dlq

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// errLostJob is a progress save that found the job changed by someone
// else: its lease expired and another runner took it over.
var errLostJob = errors.New("replay job taken over by another runner")

// run is the bulk replay runner: it looks for runnable jobs on every tick
// and whenever this process creates one.
func (s *Service) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	finished := map[string]bool{}
	for {
		finished = s.runJobs(ctx, finished)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.nudge:
		}
	}
}

// runJobs runs every job that is running and not leased by another
// runner, one after the other. finished holds the jobs known to be over, so
// that they are not read again; it returns the set pruned to the jobs that
// still exist.
func (s *Service) runJobs(ctx context.Context, finished map[string]bool) map[string]bool {
	ids, err := s.jobIDs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("dlq: list replay jobs", "err", err)
		}
		return finished
	}
	next := make(map[string]bool, len(finished))
	for _, id := range ids {
		if finished[id] {
			next[id] = true
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if s.runJob(ctx, id) {
			next[id] = true
		}
	}
	return next
}

func (s *Service) jobIDs(ctx context.Context) ([]string, error) {
	// The lister's goroutine ends when every key was read or ctx ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := s.jobs.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for k := range l.Keys() {
		ids = append(ids, k)
	}
	return ids, ctx.Err()
}

// runJob claims job id and runs it step by step until it is over, the lease
// is lost, the store fails or the runner stops. It reports whether the job
// is over (done or failed).
func (s *Service) runJob(ctx context.Context, id string) (over bool) {
	j, rev, claimed, err := s.claim(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("dlq: claim replay job", "job", id, "err", err)
		}
		return false
	}
	if !claimed {
		return j != nil && j.State != jobRunning
	}
	log := s.cfg.Logger.With("job", id)
	log.Info("replay job claimed", "runner", s.owner, "cursor", j.Cursor)
	for {
		stepErr := error(nil)
		if ctx.Err() == nil {
			stepErr = s.step(ctx, j)
		}
		stopping := ctx.Err() != nil
		if stopping {
			// Give the job up so that another runner resumes it at once.
			j.Owner, j.LeaseUntil = "", time.Time{}
		} else {
			j.LeaseUntil = s.now().Add(s.cfg.JobLease)
		}
		j.UpdatedAt = s.now()
		saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
		rev, err = s.saveJob(saveCtx, j, rev)
		cancel()
		switch {
		case err != nil:
			log.Warn("dlq: save replay job progress", "err", err)
			return false
		case j.State != jobRunning:
			log.Info("replay job "+j.State, "matched", j.Matched, "replayed", j.Replayed, "skipped", j.Skipped, "failed", j.Failed, "error", j.Error)
			return true
		case stopping:
			log.Info("replay job released", "cursor", j.Cursor)
			return false
		case stepErr != nil:
			// The store is unavailable: keep the lease and retry on a later
			// tick from the saved cursor.
			log.Warn("dlq: replay job step", "err", stepErr)
			return false
		}
		if s.afterStep != nil {
			s.afterStep(ctx, j)
		}
	}
}

// claim takes job id for this runner by compare-and-set if it is running
// and nobody else holds an unexpired lease on it. It returns the job as read
// (or as claimed) and whether it is now this runner's.
func (s *Service) claim(ctx context.Context, id string) (*job, uint64, bool, error) {
	e, err := s.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, storeErr("read replay job", err)
	}
	j, err := decodeJob(e.Value())
	if err != nil {
		return nil, 0, false, err
	}
	now := s.now()
	if j.State != jobRunning || (j.Owner != "" && j.Owner != s.owner && now.Before(j.LeaseUntil)) {
		return j, e.Revision(), false, nil
	}
	j.Owner, j.LeaseUntil = s.owner, now.Add(s.cfg.JobLease)
	rev, err := s.saveJob(ctx, j, e.Revision())
	if errors.Is(err, errLostJob) {
		return j, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	return j, rev, true, nil
}

// saveJob writes j if it is still at revision rev.
func (s *Service) saveJob(ctx context.Context, j *job, rev uint64) (uint64, error) {
	b, err := encodeJob(j)
	if err != nil {
		return 0, err
	}
	nrev, err := s.jobs.Update(ctx, j.ID, b, rev)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, errLostJob
	}
	if err != nil {
		return 0, storeErr("save replay job", err)
	}
	return nrev, nil
}

// step replays the next batch of matching dead records, advancing j's
// cursor past each record handled. It returns an error only when the store
// is unavailable or the runner stops: the record it stopped at is then
// handled again later, which is safe (a replay is idempotent per record).
// Anything else that goes wrong with a record counts as failed; a job that
// cannot go on at all is marked failed.
func (s *Service) step(ctx context.Context, j *job) error {
	found, next, err := s.scan(ctx, j.Filter.filter(), j.Cursor, s.cfg.JobBatch, j.UpTo)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, streams.ErrUnavailable) {
			return err
		}
		j.State, j.Error = jobFailed, err.Error()
		return nil
	}
	eps := map[string]endpointCheck{}
	for _, m := range found {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := s.replay(ctx, m, eps)
		switch {
		case err == nil:
			j.Replayed++
		case ctx.Err() != nil || errors.Is(err, streams.ErrUnavailable):
			return err
		case errors.As(err, new(notDeadError)):
			// Replayed by someone else since the scan read it.
			j.Skipped++
		default:
			// A deleted endpoint, or a record that cannot be replayed.
			j.Failed++
			s.cfg.Logger.Warn("dlq: replay job could not replay a record", "job", j.ID,
				"dead_letter_id", m.dl.ID, "endpoint_id", m.dl.EndpointID, "event_id", m.dl.Event.ID, "err", err)
		}
		j.Cursor = m.seq + 1
	}
	if next != 0 {
		j.Cursor = next
		return nil
	}
	j.State = jobDone
	// Matched records the walk did not find dead (replayed, deleted or aged
	// out since the job was created) were skipped too.
	if rest := j.Matched - j.Replayed - j.Skipped - j.Failed; rest > 0 {
		j.Skipped += rest
	}
	return nil
}
