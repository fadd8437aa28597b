package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/client"
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
		{name: "show", summary: "show a dead letter with its attempts", run: (*cli).dlqShow},
		{name: "replay", summary: "replay one dead letter by ID, or every one matching filters", run: (*cli).dlqReplay},
		{name: "tail", summary: "follow new dead letters, one line each (--json: one JSON line)", run: (*cli).dlqTail},
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

// clientFilter is the filter for the client; resolve must have run.
func (f *dlqFilter) clientFilter() client.DLQFilter {
	cf := client.DLQFilter{Endpoint: f.endpoint, Reason: f.reason, Type: f.typ, State: f.state}
	cf.Since, _ = time.Parse(time.RFC3339Nano, f.since)
	cf.Until, _ = time.Parse(time.RFC3339Nano, f.until)
	return cf
}

func (f *dlqFilter) empty() bool { return *f == dlqFilter{} }

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
	filter := f.clientFilter()
	return listCommand(c, ctx, cf, pf, "dead letters",
		func(cl *client.Client) func(context.Context, client.ListOptions) (*client.Page[client.DeadLetter], error) {
			return cl.DeadLetters(filter)
		},
		func(recs []client.DeadLetter) *table {
			t := newTable("ID", "DEAD AT", "ENDPOINT", "REASON", "STATE", "EVENT", "TYPE", "ATTEMPTS")
			for _, r := range recs {
				t.add(r.ID, when(r.DeadAt), r.EndpointID, r.Reason, r.State, r.Event.ID, r.Event.Type, num(r.AttemptCount))
			}
			return t
		})
}

// dlq show ID
func (c *cli) dlqShow(ctx context.Context, args []string) error {
	id, cf, cl, ctx, ans, err := c.idCommand(ctx, "dlq show", args)
	if err != nil {
		return err
	}
	rec, err := cl.DeadLetter(ctx, id)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	return printDeadLetter(c.stdout, rec)
}

func printDeadLetter(w io.Writer, r *client.DeadLetter) error {
	var f fields
	f.add("id", r.ID)
	f.add("state", r.State)
	f.add("reason", r.Reason)
	f.add("endpoint", r.EndpointID+"  "+r.URL)
	f.add("event", r.Event.ID+"  "+r.Event.Type+" from "+r.Event.Source+" at "+when(r.Event.Time))
	f.add("data", short(string(r.Event.Data), 200))
	f.add("generation", num(r.Generation))
	f.add("attempts", fmt.Sprintf("%d (%s to %s)", r.AttemptCount, when(r.FirstAttempt), when(r.LastAttempt)))
	f.add("dead at", when(r.DeadAt))
	if r.ReplayGeneration > 0 {
		f.add("replayed as generation", num(r.ReplayGeneration))
	}
	if err := f.print(w); err != nil {
		return err
	}
	t := newTable("ATTEMPT", "TIME", "STATUS", "DURATION", "ERROR", "RESPONSE")
	for _, a := range r.Attempts {
		status := ""
		if a.StatusCode != 0 {
			status = num(a.StatusCode)
		}
		t.add(num(a.Attempt), when(a.Time), status, a.Duration.String(), short(a.Error, 60), short(a.ResponseBody, 40))
	}
	fmt.Fprintln(w)
	if len(r.Attempts) < r.AttemptCount {
		fmt.Fprintf(w, "the first %d and the last %d of %d attempts:\n", min(5, len(r.Attempts)), max(0, len(r.Attempts)-5), r.AttemptCount)
	}
	return t.print(w, "attempts")
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
			return usageErrorf("dlq replay: give an ID or filters (%s), not both (for example: hookstream dlq replay %s)", filterNames, id)
		}
		cl, err := cf.client()
		if err != nil {
			return err
		}
		ctx, ans := captureAnswers(ctx)
		rec, err := cl.ReplayDeadLetter(ctx, id)
		if err != nil {
			return apiErr(cl, err)
		}
		if cf.json {
			return printJSON(c.stdout, ans.last())
		}
		_, err = fmt.Fprintf(c.stdout, "replayed %s: event %s goes to %s again as generation %d, with the same webhook-id\n",
			rec.ID, rec.Event.ID, rec.EndpointID, rec.ReplayGeneration)
		return err
	}
	if f.empty() {
		return usageErrorf("dlq replay: give a record ID, or at least one filter (%s) for a bulk replay (for example: hookstream dlq replay --endpoint ep_… --since 2h)", filterNames)
	}
	if err := positiveDuration("poll", *poll); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	started, err := cl.ReplayDeadLetters(ctx, f.clientFilter())
	if err != nil {
		return apiErr(cl, err)
	}
	if started.Job == "" {
		return fmt.Errorf("POST /v1/dlq/replay: answer has no job id: %s", oneLine(string(ans.last())))
	}
	if !cf.json {
		fmt.Fprintf(c.stdout, "replay job %s: %d records matched\n", started.Job, started.Matched)
	}
	job, err := c.followReplay(ctx, cl, started, *poll, cf.json)
	if cf.json && job != nil {
		if perr := printJSON(c.stdout, ans.last()); perr != nil {
			return perr
		}
	}
	return err
}

// replayLine is a bulk replay's progress in words.
func replayLine(j *client.ReplayJob) string {
	s := fmt.Sprintf("replayed %d/%d", j.Replayed, j.Matched)
	if j.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", j.Skipped)
	}
	if j.Failed > 0 {
		s += fmt.Sprintf(", %d failed", j.Failed)
	}
	return s
}

// followReplay polls a bulk replay job until it ends, showing its progress
// (a bar on a terminal, a line per change elsewhere, nothing with quiet),
// and returns its last state.
func (c *cli) followReplay(ctx context.Context, cl *client.Client, started *client.ReplayStarted, poll time.Duration, quiet bool) (*client.ReplayJob, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	bar := &progress{w: c.stdout, tty: c.tty(c.stdout)}
	defer bar.done()
	for {
		j, err := cl.ReplayJob(ctx, started.Job)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("stopped following replay job %s (it goes on in the server): %w", started.Job, ctx.Err())
			}
			return nil, apiErr(cl, err)
		}
		if j.Matched == 0 {
			j.Matched = started.Matched
		}
		if !quiet {
			bar.update(j.Replayed+j.Skipped+j.Failed, j.Matched, replayLine(j))
		}
		if j.Finished() {
			bar.done()
			switch {
			case j.Error != "":
				return j, fmt.Errorf("replay job %s: %s", j.Job, j.Error)
			case j.Failed > 0:
				return j, fmt.Errorf("replay job %s: %d of %d records failed to replay", j.Job, j.Failed, j.Matched)
			case j.State == client.JobFailed:
				return j, fmt.Errorf("replay job %s failed", j.Job)
			}
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped following replay job %s (it goes on in the server): %w", started.Job, ctx.Err())
		case <-t.C:
		}
	}
}

// dlq tail [--endpoint] [--type] [--reason] [--poll 1s]: every record that
// dies from now on, one line each (with --json, the record as one JSON
// line), until ctx ends (Ctrl-C: exit 0). The first request asks for
// records since now; once a record is seen, the next ones start at its DLQ
// stream sequence + 1.
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
	filter := f.clientFilter()
	filter.Since = c.now().UTC()
	opts := client.ListOptions{}
	t := time.NewTicker(*poll)
	defer t.Stop()
	for {
		var raw []byte
		pctx := client.WithAnswer(ctx, func(b []byte) { raw = b })
		p, err := cl.ListDeadLetters(pctx, filter, opts)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return apiErr(cl, err)
		}
		var rawItems struct {
			Items []json.RawMessage `json:"items"`
		}
		if cf.json {
			if err := json.Unmarshal(raw, &rawItems); err != nil {
				return fmt.Errorf("GET /v1/dlq: answer is not a list page: %w", err)
			}
		}
		var lastSeq uint64
		for i, rec := range p.Items {
			if cf.json && i < len(rawItems.Items) {
				var buf bytes.Buffer
				if err := json.Compact(&buf, rawItems.Items[i]); err != nil {
					return fmt.Errorf("GET /v1/dlq: bad record: %w", err)
				}
				buf.WriteByte('\n')
				if _, err := c.stdout.Write(buf.Bytes()); err != nil {
					return err
				}
			} else if !cf.json {
				if _, err := fmt.Fprintf(c.stdout, "%s  %s  %s  %s  %s %s  %d attempts\n",
					when(rec.DeadAt), rec.ID, rec.EndpointID, rec.Reason, rec.Event.Type, rec.Event.ID, rec.AttemptCount); err != nil {
					return err
				}
			}
			lastSeq = max(lastSeq, rec.Seq)
		}
		// The API reads a bounded stretch of the stream per request, so a
		// sparse filter may answer few items, or none, with a next_cursor:
		// follow it at once. With nothing more now, go on after the last seq.
		switch {
		case p.NextCursor != "":
			opts.Cursor = p.NextCursor
			continue
		case lastSeq > 0:
			opts.Cursor = strconv.FormatUint(lastSeq+1, 10)
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
// deletes each, with a progress bar on a terminal. Without --yes it only
// counts them, and refuses.
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
		return usageErrorf("dlq purge: give at least one filter (%s) (for example: hookstream dlq purge --endpoint ep_… --yes)", filterNames)
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	recs, err := client.Collect(client.All(ctx, client.ListOptions{Limit: listPageAll}, cl.DeadLetters(f.clientFilter())))
	if err != nil {
		return apiErr(cl, err)
	}
	for _, r := range recs {
		if r.ID == "" {
			return fmt.Errorf("GET /v1/dlq: a record has no id (seq %d)", r.Seq)
		}
	}
	if !*yes && len(recs) > 0 {
		return fmt.Errorf("refusing to purge %d records without --yes", len(recs))
	}
	bar := &progress{w: c.stdout, tty: c.tty(c.stdout)}
	// Off a terminal, a line per tenth is enough to see it move.
	step := max(1, len(recs)/10)
	purged, gone := 0, 0
	for i, r := range recs {
		err := cl.DeleteDeadLetter(ctx, r.ID)
		switch {
		case err == nil:
			purged++
		case client.IsNotFound(err):
			// Gone already (deleted meanwhile, or aged out): nothing to do.
			gone++
		default:
			bar.done()
			return fmt.Errorf("purged %d of %d records, then: %w", purged, len(recs), apiErr(cl, err))
		}
		if !cf.json && (bar.tty || (i+1)%step == 0 && i+1 < len(recs)) {
			bar.update(i+1, len(recs), fmt.Sprintf("purged %d/%d", purged+gone, len(recs)))
		}
	}
	bar.done()
	if cf.json {
		return encodeJSON(c.stdout, map[string]int{"purged": purged, "matched": len(recs)})
	}
	msg := fmt.Sprintf("purged %d of %d matching records", purged, len(recs))
	if gone > 0 {
		msg += fmt.Sprintf(" (%d already gone)", gone)
	}
	_, err = fmt.Fprintln(c.stdout, msg)
	return err
}
