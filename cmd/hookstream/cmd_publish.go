package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hookstream/hookstream/client"
)

// maxData bounds what --data reads from a file or stdin: well above the
// API's event limit, so the API (not the CLI) says what the limit is.
const maxData = 64 << 20

// publish: hookstream publish --type T [--source S] [--id ID] [--time RFC3339] --data JSON|@file|-
func (c *cli) publish(ctx context.Context, args []string) error {
	fs := newFlagSet("publish", c.stderr)
	setSynopsis(fs, "hookstream publish --type T [--source S] [--id ID] [--time RFC3339] [--ordering-key K] --data JSON|@file|-")
	cf := addClientFlags(fs)
	typ := fs.String("type", "", "event type, e.g. purchase_order.updated (required)")
	source := fs.String("source", "", "the system the event comes from (the API's default when not given: default)")
	id := fs.String("id", "", "event id, the idempotency key (generated when not given)")
	at := fs.String("time", "", "when it happened, RFC 3339 (now when not given)")
	data := fs.String("data", "", "the event data: a JSON object, @file to read it from a file, or - for stdin (required)")
	batch := fs.String("batch", "", "publish the events of FILE (or - for stdin), one JSON event a line, in batches of 1000")
	atomic := fs.Bool("atomic", false, "with --batch: store each batch whole or not at all")
	orderingKey := fs.String("ordering-key", "", "orders the event among those of the same key on ordered endpoints")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if given(fs, "batch") {
		for _, n := range []string{"type", "source", "id", "time", "data", "ordering-key"} {
			if given(fs, n) {
				return usageErrorf("publish: --%s and --batch do not go together: each line of --batch is a whole event (for example: {\"type\":\"order.created\",\"data\":{}})", n)
			}
		}
		return c.publishBatch(ctx, cf, *batch, *atomic)
	}
	if *atomic {
		return usageErrorf("publish: --atomic needs --batch (for example: hookstream publish --batch events.jsonl --atomic)")
	}
	if *typ == "" {
		return usageErrorf("publish: --type is required (for example: hookstream publish --type order.created --data '{\"order_id\":\"o-1\"}')")
	}
	if !given(fs, "data") {
		return usageErrorf("publish: --data is required: a JSON object, @file or - (for example: --data '{\"order_id\":\"o-1\"}')")
	}
	ev := client.Event{ID: *id, Type: *typ, Source: *source, OrderingKey: *orderingKey}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return usageErrorf("--time: must be RFC 3339, got %q (for example: --time 2024-05-01T12:00:00Z)", *at)
		}
		ev.Time = t.UTC()
	}
	raw, err := c.readData(*data)
	if err != nil {
		return err
	}
	ev.Data = raw
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	res, err := cl.Publish(ctx, ev)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	if res.Duplicate {
		_, err = fmt.Fprintf(c.stdout, "event %s was already stored: a duplicate, nothing stored again\n", res.ID)
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "stored event %s\n", res.ID)
	return err
}

// readData reads --data: the JSON itself, @file, or - (stdin), and checks it
// is one JSON object.
func (c *cli) readData(arg string) (json.RawMessage, error) {
	var (
		raw  []byte
		from = "--data"
	)
	switch {
	case arg == "-" || arg == "@-":
		b, err := io.ReadAll(io.LimitReader(c.stdin, maxData+1))
		if err != nil {
			return nil, fmt.Errorf("--data: read stdin: %w", err)
		}
		raw, from = b, "--data (stdin)"
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxData+1))
		if err != nil {
			return nil, fmt.Errorf("--data: read %s: %w", arg[1:], err)
		}
		raw, from = b, "--data ("+arg[1:]+")"
	default:
		raw = []byte(arg)
	}
	if len(raw) > maxData {
		return nil, usageErrorf("%s: larger than %d bytes", from, maxData)
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, usageErrorf("%s: not valid JSON", from)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, usageErrorf("%s: must be a JSON object", from)
	}
	return raw, nil
}

// publishBatch publishes the events of file (- for stdin), one JSON object
// a line, MaxBatchEvents at a time. A bad line is refused before anything is
// sent, naming its line.
func (c *cli) publishBatch(ctx context.Context, cf *clientFlags, file string, atomic bool) error {
	var rd io.Reader = c.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("--batch: %w", err)
		}
		defer f.Close()
		rd = f
	}
	var events []client.Event
	sc := bufio.NewScanner(io.LimitReader(rd, maxData+1))
	sc.Buffer(make([]byte, 64<<10), maxData)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev client.Event
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			return usageErrorf("--batch line %d: not a JSON event {\"type\",\"data\",…}: %v", n, err)
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--batch: %w", err)
	}
	if len(events) == 0 {
		return usageErrorf("--batch: no events in %s (one JSON event a line, for example: {\"type\":\"order.created\",\"data\":{}})", file)
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	var all []client.BatchResult
	stored, dups := 0, 0
	for start := 0; start < len(events); start += client.MaxBatchEvents {
		chunk := events[start:min(start+client.MaxBatchEvents, len(events))]
		res, err := cl.PublishBatch(ctx, chunk, atomic)
		all = append(all, res...)
		for _, r := range res {
			if r.Stored() {
				stored++
				if *r.Duplicate {
					dups++
				}
			}
		}
		if err != nil {
			if client.StatusOf(err) == 400 && start > 0 {
				err = fmt.Errorf("events %d on: %w", start+1, err)
			}
			return fmt.Errorf("stored %d of %d events, then: %w (sending the whole file again is safe)", stored, len(events), apiErr(cl, err))
		}
	}
	if cf.json {
		return encodeJSON(c.stdout, map[string]any{"results": all})
	}
	_, err = fmt.Fprintf(c.stdout, "stored %d events (%d of them duplicates, stored before)\n", stored, dups)
	return err
}
