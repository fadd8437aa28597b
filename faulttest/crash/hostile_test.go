package crash

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// hostile is a raw TCP endpoint that answers every request with the same
// bytes, whatever HTTP allows. It holds the requests it read until batch of
// them wait (or a moment passed), then answers them together, so that
// batch deliveries are really in flight at once.
type hostile struct {
	url    string
	answer []byte
	batch  int

	mu       sync.Mutex
	waiting  []chan struct{}
	timer    *time.Timer
	answered int
	maxBatch int
}

// hostileBatchWait is how long a partial batch waits for the rest.
const hostileBatchWait = time.Second

func newHostile(t *testing.T, answer []byte, batch int) *hostile {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{url: "http://" + ln.Addr().String() + "/hook", answer: answer, batch: batch}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		h.release()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { h.serve(conn) })
		}
	})
	return h
}

func (h *hostile) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
	<-h.arrive()
	// The dispatcher hangs up once it has read what it allows: a write
	// error is expected.
	_, _ = conn.Write(h.answer)
}

// arrive queues one request read; the channel is closed when its batch is
// to be answered.
func (h *hostile) arrive() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan struct{})
	h.waiting = append(h.waiting, c)
	if len(h.waiting) >= h.batch {
		h.releaseLocked()
	} else if h.timer == nil {
		h.timer = time.AfterFunc(hostileBatchWait, h.release)
	}
	return c
}

func (h *hostile) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked()
}

func (h *hostile) releaseLocked() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.answered += len(h.waiting)
	h.maxBatch = max(h.maxBatch, len(h.waiting))
	for _, c := range h.waiting {
		close(c)
	}
	h.waiting = nil
}

func (h *hostile) stats() (answered, maxBatch int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answered, h.maxBatch
}

// procMemory reads a process's current and peak resident set size
// (VmRSS, VmHWM) from /proc.
func procMemory(t *testing.T, pid int) (rss, hwm uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read the process status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("parse %s: %v", line, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		t.Fatalf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm
}

// fourHundredThousandHeaders is a 200 with 400,000 distinct headers: 5 MB on
// the wire, over 50 MiB once Go has parsed it.
func fourHundredThousandHeaders() []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range 400_000 {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// An endpoint answering 400,000 headers to 10 deliveries in flight at once
// grows serve's resident memory by less than 100 MiB at its peak (it took
// serve from 25 MiB to 570–750 MiB): at most 64 KiB of headers are read.
func TestHostileHeadersKeepServeMemoryBounded(t *testing.T) {
	t.Parallel()
	const (
		inFlight = 10 // the default per-endpoint concurrency
		events   = 60
		rounds   = 10 // answers wanted: rounds × inFlight
		bound    = 100 << 20
	)
	h := newHostile(t, fourHundredThousandHeaders(), inFlight)
	p := startServe(t, t.TempDir(), "--delivery-timeout", "10s", "--ack-wait", "30s", "--retry-initial", "100ms",
		"--retry-max-interval", "200ms", "--retry-min-delay", "100ms", "--failing-after", "1000000", "--log-level", "warn")
	a := newAPI(t, p.url, 4)
	a.addEndpoint(h.url, "hostile.*")
	pid := p.cmd.Process.Pid
	baseRSS, baseHWM := procMemory(t, pid)
	for i := range events {
		if ok, err := a.publish(fmt.Sprintf("hostile-%03d", i), "hostile.created"); !ok {
			t.Fatalf("publish: %v", err)
		}
	}
	var peak uint64
	if !eventually(2*time.Minute, func() bool {
		_, hwm := procMemory(t, pid)
		peak = max(peak, hwm)
		n, _ := h.stats()
		return n >= rounds*inFlight || peak-baseRSS > 2*bound
	}) {
		n, _ := h.stats()
		t.Fatalf("the hostile endpoint answered %d requests in time, want %d", n, rounds*inFlight)
	}
	rss, hwm := procMemory(t, pid)
	peak = max(peak, hwm)
	n, batch := h.stats()
	t.Logf("serve RSS: %.1f MiB before (peak %.1f), %.1f MiB after %d hostile answers, peak %.1f MiB: growth %.1f MiB; up to %d in flight at once",
		mib(baseRSS), mib(baseHWM), mib(rss), n, mib(peak), mib(peak-baseRSS), batch)
	if batch < inFlight {
		t.Errorf("at most %d deliveries were in flight at once, want %d", batch, inFlight)
	}
	if growth := peak - baseRSS; growth >= bound {
		t.Errorf("serve's peak RSS grew by %.1f MiB, want under %.0f MiB", mib(growth), mib(bound))
	}
	p.stop()
}

// An endpoint answering a malformed 300 KB status line: every attempt's error
// is cut to 1 KiB, so the dead-letter record of its many attempts fits, and
// the delivery is dead-lettered at its deadline (before, each attempt kept
// the 300 KB line and the record never fit in the DLQ stream).
func TestMalformedStatusLineDeadLetteredAtItsDeadline(t *testing.T) {
	t.Parallel()
	const (
		events  = 3
		maxAge  = 5 * time.Second
		ackWait = 3 * time.Second
		slack   = 4 * time.Second
	)
	h := newHostile(t, []byte("HTTP/1.1 "+strings.Repeat("x", 300<<10)+"\r\n\r\n"), 1)
	p := startServe(t, t.TempDir(), "--retry-max-age", maxAge.String(), "--ack-wait", ackWait.String(),
		"--delivery-timeout", "2s", "--retry-initial", "200ms", "--retry-max-interval", "500ms", "--retry-min-delay", "100ms",
		"--failing-after", "1000000", "--log-level", "warn")
	a := newAPI(t, p.url, 4)
	ep := a.addEndpoint(h.url, "malformed.*")
	for i := range events {
		if ok, err := a.publish(fmt.Sprintf("malformed-%d", i), "malformed.created"); !ok {
			t.Fatalf("publish: %v", err)
		}
	}
	type record struct {
		Reason       string    `json:"reason"`
		DeadAt       time.Time `json:"dead_at"`
		AttemptCount int       `json:"attempt_count"`
		Attempts     []struct {
			Error string `json:"error"`
		} `json:"attempts"`
		Event struct {
			ID   string    `json:"id"`
			Time time.Time `json:"time"`
		} `json:"event"`
	}
	var page struct {
		Items []record `json:"items"`
	}
	if !eventually(maxAge+ackWait+30*time.Second, func() bool {
		code, err := a.do(http.MethodGet, "/v1/dlq?endpoint="+ep+"&limit=100", nil, &page)
		return err == nil && code == http.StatusOK && len(page.Items) >= events
	}) {
		n, _ := h.stats()
		t.Fatalf("%d of %d deliveries dead-lettered after %d attempts in all", len(page.Items), events, n)
	}
	for _, rec := range page.Items {
		// The final attempt is asked for a moment ahead of the deadline
		// (the dispatcher's lead, a twentieth of a short max age), and the
		// event's time is a little before its delivery was stored.
		deadline := rec.Event.Time.Add(maxAge)
		if rec.Reason != streams.ReasonExpired || rec.DeadAt.Before(deadline.Add(-time.Second)) || rec.DeadAt.After(deadline.Add(ackWait+slack)) {
			t.Errorf("%s: %s at %s, want expired at its deadline %s", rec.Event.ID, rec.Reason, rec.DeadAt, deadline)
		}
		// Five attempts of the 300 KB line alone would not fit.
		if rec.AttemptCount < 5 || len(rec.Attempts) != min(rec.AttemptCount, 25) {
			t.Errorf("%s: %d attempts (%d kept), want at least 5, all kept up to 25", rec.Event.ID, rec.AttemptCount, len(rec.Attempts))
		}
		for i, at := range rec.Attempts {
			if len(at.Error) > 1<<10 || at.Error == "" {
				t.Errorf("%s: attempt %d error is %d bytes, want 1 to 1024", rec.Event.ID, i+1, len(at.Error))
			}
		}
	}
	p.stop()
}
