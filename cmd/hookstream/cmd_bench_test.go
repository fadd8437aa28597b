package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/bench"
)

// TestBenchQuick is `hookstream bench --quick`, the smoke run of `make
// test`: every row of the table is there with figures, none with an error.
// No figure is compared with a target: the machines are shared.
func TestBenchQuick(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if err := runBench(ctx, []string{"--quick", "--json"}, &out, &errb); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errb.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	want := []string{
		"floor-jetstream", "floor-http",
		"producer-1", "ingest-1", "batch-1", "producer-10", "ingest-10", "batch-10",
		"ordered-16", "latency-producer-300", "latency-ingest-300", "latency-producer-600", "latency-ingest-600",
	}
	got := map[string]bench.Row{}
	for _, r := range rep.Rows {
		got[r.Case] = r
	}
	for _, c := range want {
		r, ok := got[c]
		switch {
		case !ok:
			t.Errorf("row %s missing", c)
		case r.Error != "" || r.Skipped != "":
			t.Errorf("row %s: error %q, skipped %q", c, r.Error, r.Skipped)
		case r.Count == 0 || r.PerSecond == 0 || r.PeakRSS == 0:
			t.Errorf("row %s: count %d, per second %.0f, peak RSS %d: want every figure above zero", c, r.Count, r.PerSecond, r.PeakRSS)
		case !strings.HasPrefix(c, "floor-") && !strings.HasPrefix(c, "latency-") && r.Ratio == 0:
			t.Errorf("row %s: no ratio to the HTTP floor", c)
		case strings.HasPrefix(c, "latency-") && (r.P50MS == 0 || r.P99MS == 0 || r.MaxMS == 0):
			t.Errorf("row %s: p50 %.1f, p99 %.1f, max %.1f: want every latency above zero", c, r.P50MS, r.P99MS, r.MaxMS)
		}
	}
	if len(rep.Rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rep.Rows), len(want))
	}
	// The table is what users read: print it for the log, and check that
	// every row made it.
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, c := range want {
		if !strings.Contains(table.String(), "| "+c+" ") {
			t.Errorf("table has no row %s:\n%s", c, table.String())
		}
	}
	t.Logf("hookstream bench --quick:\n%s", table.String())
}

// TestBenchAgainstServer runs the cases against a deployment's API
// (--server), here a serve in this process: the endpoints are created
// through the API, the Go producer's cases are skipped without --nats-url.
func TestBenchAgainstServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := startLocalServe(ctx, time.Minute, false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	var out, errb bytes.Buffer
	err = runBench(ctx, []string{"--server", s.api, "--quick", "--json", "--cases", "^(floor-http|ingest-1|producer-1|latency-ingest-300)$"}, &out, &errb)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errb.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	got := map[string]bench.Row{}
	for _, r := range rep.Rows {
		got[r.Case] = r
	}
	if len(rep.Rows) != 4 {
		t.Errorf("%d rows, want 4: %+v", len(rep.Rows), rep.Rows)
	}
	for _, c := range []string{"floor-http", "ingest-1", "latency-ingest-300"} {
		if r := got[c]; r.Error != "" || r.Skipped != "" || r.Count == 0 || r.PerSecond == 0 {
			t.Errorf("row %s: %+v", c, r)
		}
	}
	if r := got["producer-1"]; r.Skipped == "" {
		t.Errorf("producer-1 without --nats-url: %+v, want it skipped", r)
	}
	if rep.Settings["mode"] != "server "+s.api {
		t.Errorf("mode %q", rep.Settings["mode"])
	}
}

func TestBenchFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--rate", "fast"},
		{"--token", "t"},
		{"--concurrency", "0"},
		{"--size", "10"},
		{"--cases", "("},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		err := runBench(context.Background(), args, &out, &errb)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}
