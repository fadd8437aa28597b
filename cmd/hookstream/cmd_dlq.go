package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the dlq command flags.
const (
	// ReplayPollDefault is how often `dlq replay` (bulk) asks for progress.
	ReplayPollDefault = 500 * time.Millisecond
	// TailPollDefault is how often `dlq tail` asks for new records.
	TailPollDefault = time.Second
)

func dlqCommands() []*command {
	return []*command{
		{name: "list", summary: "list dead letters matching filters", run: (*cli).dlqList},
		{name: "show", summary: "show a dead letter with its attempts", run: simpleCall("dlq show", http.MethodGet, "/v1/dlq/", "")},
		{name: "replay", summary: "replay one dead letter by ID, or every one matching filters", run: (*cli).dlqReplay},
		{name: "tail", summary: "follow new dead letters, one JSON line each", run: (*cli).dlqTail},
		{name: "purge", summary: "delete every dead letter matching filters (needs --yes)", run: (*cli).dlqPurge},
	}
}

// dlqFilter is the filter of GET /v1/dlq and of the bulk replay body.
type dlqFilter struct {
	endpoint, reason, typ, since, until, state string
}

// addDLQFilterFlags adds the filter flags; tail takes only some.
func addDLQFilterFlags(fs *flag.FlagSet, tail bool) *dlqFilter {
	f := &dlqFilter{}
	fs.StringVar(&f.endpoint, "endpoint", "", "only this endpoint's records")
	fs.StringVar(&f.reason, "reason", "", "only this reason: expired, endpoint_gone, endpoint_deleted")
	fs.StringVar(&f.typ, "type", "", "only this event type, or a prefix such as order.*")
	if !tail {
		fs.StringVar(&f.since, "since", "", "only records dead at or after this time: RFC 3339, or a duration ago like 2h")
		fs.StringVar(&f.until, "until", "", "only records dead before this time: RFC 3339, or a duration ago like 30m")
		fs.StringVar(&f.state, "state", "", "only this state: dead, replayed, delivered")
	}
	return f
}

// resolve turns since and until into RFC 3339 UTC times; "2h" means two hours
// before now.
func (f *dlqFilter) resolve(now time.Time) error {
	for _, p := range []struct {
		name string
		v    *string
	}{{"since", &f.since}, {"until", &f.until}} {
		if *p.v == "" {
			continue
		}
		t, err := parseTimeOrAgo(*p.v, now)
		if err != nil {
			return usageErrorf("--%s: %v", p.name, err)
		}
		*p.v = t.UTC().Format(time.RFC3339Nano)
	}
	return nil
}

func parseTimeOrAgo(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("must be RFC 3339 like 2024-05-01T12:00:00Z or a duration ago like 2h, got %q", s)
}

func (f *dlqFilter) fields() [][2]string {
	return [][2]string{
		{"endpoint", f.endpoint}, {"reason", f.reason}, {"type", f.typ},
		{"since", f.since}, {"until", f.until}, {"state", f.state},
	}
}

func (f *dlqFilter) query() url.Values {
	q := url.Values{}
	for _, kv := range f.fields() {
		if kv[1] != "" {
			q.Set(kv[0], kv[1])
		}
	}
	return q
}

// body is the bulk replay body: the filter fields, empty ones omitted.
func (f *dlqFilter) body() map[string]string {
	b := map[string]string{}
	for _, kv := range f.fields() {
		if kv[1] != "" {
			b[kv[0]] = kv[1]
		}
	}
	return b
}

func (f *dlqFilter) empty() bool { return len(f.body()) == 0 }

const filterNames = "--endpoint, --reason, --type, --since, --until, --state"

// dlq list [--endpoint] [--reason] [--type] [--since] [--until] [--state] [--limit] [--cursor] [--all]
func (c *cli) dlqList(ctx context.Context, args []string) error {
	fs := newFlagSet("dlq list", c.stderr)
	cf := addClientFlags(fs)
	f := addDLQFilterFlags(fs, false)
	pf := addPageFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := f.resolve(c.now()); err != nil {
		return err
	}
	return c.printList(ctx, cf, pf, "/v1/dlq", f.query())
}

// dlq replay ID | dlq replay --endpoint … [filters] [--poll 500ms]
func (c *cli) dlqReplay(ctx context.Context, args []string) error {
	fs := newFlagSet("dlq replay", c.stderr)
	setSynopsis(fs, "hookstream dlq replay ID\n       hookstream dlq replay --endpoint E [--reason R] [--type T] [--since S] [--until U] [--state S] [--poll 500ms]")
	cf := addClientFlags(fs)
	f := addDLQFilterFlags(fs, false)
	poll := fs.Duration("poll", ReplayPollDefault, "how often a bulk replay's progress is asked for")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := f.resolve(c.now()); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		id, err := exactlyOneArg(fs, "ID")
		if err != nil {
			return err
		}
		if !f.empty() {
			return usageErrorf("dlq replay: give an ID or filters (%s), not both", filterNames)
		}
		return c.call(ctx, cf, http.MethodPost, "/v1/dlq/"+esc(id)+"/replay", nil, nil)
	}
	if f.empty() {
		return usageErrorf("dlq replay: give a record ID, or at least one filter (%s) for a bulk replay", filterNames)
	}
	if err := positiveDuration("poll", *poll); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ans, err := cl.do(ctx, http.MethodPost, "/v1/dlq/replay", nil, f.body())
	if err != nil {
		return err
	}
	var started struct {
		Job     string `json:"job"`
		Matched int    `json:"matched"`
	}
	if err := json.Unmarshal(ans, &started); err != nil || started.Job == "" {
		return fmt.Errorf("POST /v1/dlq/replay: answer has no job id: %s", oneLine(string(ans)))
	}
	fmt.Fprintf(c.stdout, "replay job %s: %d records matched\n", started.Job, started.Matched)
	return c.followReplay(ctx, cl, started.Job, started.Matched, *poll)
}

// replayProgress is what GET /v1/dlq/replays/{job} answers: {"job", "state":
// "running|done|failed", "matched", "replayed", "skipped", "failed",
// "error"?}. The end is also read from "done" or "status", or the counts when
// no state is given, so that the CLI never follows a finished job forever.
type replayProgress struct {
	Job      string `json:"job"`
	State    string `json:"state"`
	Status   string `json:"status"`
	Done     bool   `json:"done"`
	Matched  int    `json:"matched"`
	Replayed int    `json:"replayed"`
	Failed   int    `json:"failed"`
	Skipped  int    `json:"skipped"`
	Error    string `json:"error"`
}

// finished reports whether the job has ended: by its state when the API
// reports one, by its counts otherwise.
func (p *replayProgress) finished() bool {
	if p.Done || p.Error != "" {
		return true
	}
	if state := strings.ToLower(p.State + p.Status); state != "" {
		switch state {
		case "done", "completed", "complete", "finished", "succeeded", "failed", "canceled", "cancelled":
			return true
		}
		return false
	}
	return p.Replayed+p.Failed+p.Skipped >= p.Matched
}

func (p *replayProgress) line() string {
	s := fmt.Sprintf("replayed %d/%d", p.Replayed, p.Matched)
	if p.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", p.Skipped)
	}
	if p.Failed > 0 {
		s += fmt.Sprintf(", %d failed", p.Failed)
	}
	return s
}

// followReplay polls a bulk replay job, printing a progress line whenever it
// changes, until the job is done.
func (c *cli) followReplay(ctx context.Context, cl *client, job string, matched int, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	last := ""
	for {
		ans, err := cl.do(ctx, http.MethodGet, "/v1/dlq/replays/"+esc(job), nil, nil)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped following replay job %s (it goes on in the server): %w", job, ctx.Err())
			}
			return err
		}
		var p replayProgress
		if err := json.Unmarshal(ans, &p); err != nil {
			return fmt.Errorf("GET /v1/dlq/replays/%s: answer is not a replay job: %w", job, err)
		}
		if p.Matched == 0 {
			p.Matched = matched
		}
		if line := p.line(); line != last {
			fmt.Fprintln(c.stdout, line)
			last = line
		}
		if p.finished() {
			switch {
			case p.Error != "":
				return fmt.Errorf("replay job %s: %s", job, p.Error)
			case p.Failed > 0:
				return fmt.Errorf("replay job %s: %d of %d records failed to replay", job, p.Failed, p.Matched)
			case strings.EqualFold(p.State, "failed") || strings.EqualFold(p.Status, "failed"):
				return fmt.Errorf("replay job %s failed", job)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following replay job %s (it goes on in the server): %w", job, ctx.Err())
		case <-t.C:
		}
	}
}

// dlq tail [--endpoint] [--type] [--reason] [--poll 1s]: every record that
// dies from now on, one compact JSON line each, until ctx ends (Ctrl-C: exit
// 0). The first request asks for records since now; once a record is seen,
// the next ones start at its DLQ stream sequence + 1.
func (c *cli) dlqTail(ctx context.Context, args []string) error {
	fs := newFlagSet("dlq tail", c.stderr)
	cf := addClientFlags(fs)
	f := addDLQFilterFlags(fs, true)
	poll := fs.Duration("poll", TailPollDefault, "how often new records are asked for")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := positiveDuration("poll", *poll); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	q := f.query()
	q.Set("since", c.now().UTC().Format(time.RFC3339Nano))
	t := time.NewTicker(*poll)
	defer t.Stop()
	for {
		data, err := cl.do(ctx, http.MethodGet, "/v1/dlq", q, nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		var p page
		if err := json.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("GET /v1/dlq: answer is not a list page: %w", err)
		}
		var lastSeq uint64
		for _, item := range p.Items {
			var buf bytes.Buffer
			if err := json.Compact(&buf, item); err != nil {
				return fmt.Errorf("GET /v1/dlq: bad record: %w", err)
			}
			buf.WriteByte('\n')
			if _, err := c.stdout.Write(buf.Bytes()); err != nil {
				return err
			}
			var rec struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(item, &rec); err == nil && rec.Seq > lastSeq {
				lastSeq = rec.Seq
			}
		}
		// The API reads a bounded stretch of the stream per request, so a
		// sparse filter may answer few items, or none, with a next_cursor:
		// follow it at once. With nothing more now, go on after the last seq.
		switch {
		case p.NextCursor != "":
			q.Set("cursor", p.NextCursor)
			continue
		case lastSeq > 0:
			q.Set("cursor", strconv.FormatUint(lastSeq+1, 10))
		case len(p.Items) > 0:
			return errors.New("dlq tail: records carry no seq and the page no next_cursor; cannot follow")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// dlq purge [filters] [--yes]: lists every matching record (all pages), then
// deletes each. Without --yes it only counts them, and refuses.
func (c *cli) dlqPurge(ctx context.Context, args []string) error {
	fs := newFlagSet("dlq purge", c.stderr)
	setSynopsis(fs, "hookstream dlq purge [--endpoint E] [--reason R] [--type T] [--since S] [--until U] [--state S] [--yes]")
	cf := addClientFlags(fs)
	f := addDLQFilterFlags(fs, false)
	yes := fs.Bool("yes", false, "really delete the matching records")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := f.resolve(c.now()); err != nil {
		return err
	}
	if f.empty() {
		return usageErrorf("dlq purge: give at least one filter (%s)", filterNames)
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	p, err := cl.list(ctx, "/v1/dlq", f.query(), &pageFlags{all: true})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(p.Items))
	for _, item := range p.Items {
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(item, &rec); err != nil || rec.ID == "" {
			return fmt.Errorf("GET /v1/dlq: a record has no id: %s", oneLine(string(item)))
		}
		ids = append(ids, rec.ID)
	}
	if !*yes && len(ids) > 0 {
		return fmt.Errorf("refusing to purge %d records without --yes", len(ids))
	}
	purged := 0
	for _, id := range ids {
		_, err := cl.do(ctx, http.MethodDelete, "/v1/dlq/"+esc(id), nil, nil)
		var ae *apiError
		switch {
		case err == nil:
			purged++
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			// Gone already (deleted meanwhile, or aged out): nothing to do.
		default:
			return fmt.Errorf("purged %d of %d records, then: %w", purged, len(ids), err)
		}
	}
	return encodeJSON(c.stdout, map[string]int{"purged": purged, "matched": len(ids)})
}
