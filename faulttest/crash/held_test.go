package crash

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Retries waiting in JetStream for a disabled endpoint and for a failing
// one survive a kill -9: after a restart on the same --data each is
// dead-lettered within --ack-wait and a few seconds of its deadline, and
// nothing is left in DELIVERIES. (Before, the held retries lived in the old
// process's memory and were never dead-lettered: DELIVERIES' max age later
// deleted them with no record.)
func TestHeldRetriesDeadLetteredAfterKill9(t *testing.T) {
	t.Parallel()
	const (
		perEndpoint = 10
		maxAge      = 6 * time.Second
		ackWait     = 2 * time.Second
		slack       = 4 * time.Second
	)
	data := t.TempDir()
	natsPort := freePort(t)
	flags := []string{"--retry-max-age", maxAge.String(), "--ack-wait", ackWait.String(), "--delivery-timeout", "1s",
		"--retry-initial", "4s", "--retry-max-interval", "1m", "--retry-min-delay", "100ms", "--failing-after", "3",
		"--nats-listen", "127.0.0.1:" + strconv.Itoa(natsPort), "--log-level", "warn"}
	p1 := startServe(t, data, flags...)
	a1 := newAPI(t, p1.url, 4)
	var requests atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	disabled := a1.addEndpoint(down.URL+"/disabled", "held.*")
	failing := a1.addEndpoint(down.URL+"/failing", "held.*")
	var ids []string
	for i := range perEndpoint {
		id := fmt.Sprintf("held-%02d", i)
		ids = append(ids, id)
		if ok, err := a1.publish(id, "held.created"); !ok {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	// Both endpoints fail until they are failing (3 failures): their first
	// attempts wait in JetStream for a retry, the rest unread. Then the
	// operator disables one of them.
	status := func(a *api, id string) string {
		var ep struct {
			Status string `json:"status"`
		}
		if code, err := a.do(http.MethodGet, "/v1/endpoints/"+id, nil, &ep); err != nil || code != http.StatusOK {
			return ""
		}
		return ep.Status
	}
	for _, id := range []string{disabled, failing} {
		if !eventually(30*time.Second, func() bool { return status(a1, id) == streams.StatusFailing }) {
			t.Fatalf("endpoint %s is %q after %d requests, want failing", id, status(a1, id), requests.Load())
		}
	}
	if code, err := a1.do(http.MethodPost, "/v1/endpoints/"+disabled+"/disable", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("disable: %d %v", code, err)
	}
	if !eventually(30*time.Second, func() bool { return status(a1, disabled) == streams.StatusDisabled }) {
		t.Fatalf("endpoint %s is %q, want disabled", disabled, status(a1, disabled))
	}
	p1.kill()

	p2 := startServe(t, data, flags...)
	a2 := newAPI(t, p2.url, 4)
	type record struct {
		Reason string    `json:"reason"`
		DeadAt time.Time `json:"dead_at"`
		Event  struct {
			ID   string    `json:"id"`
			Time time.Time `json:"time"`
		} `json:"event"`
	}
	var page struct {
		Items []record `json:"items"`
	}
	for _, epID := range []string{disabled, failing} {
		if !eventually(maxAge+ackWait+30*time.Second, func() bool {
			code, err := a2.do(http.MethodGet, "/v1/dlq?endpoint="+epID+"&limit=1000", nil, &page)
			return err == nil && code == http.StatusOK && len(page.Items) >= perEndpoint
		}) {
			t.Fatalf("endpoint %s: %d of %d dead-lettered after the restart", epID, len(page.Items), perEndpoint)
		}
		seen := map[string]bool{}
		for _, rec := range page.Items {
			seen[rec.Event.ID] = true
			if rec.Reason != streams.ReasonExpired {
				t.Errorf("%s %s: reason %s, want expired", epID, rec.Event.ID, rec.Reason)
			}
			// The event was published just before it was stored: its time
			// is at most that far ahead of the delivery's deadline.
			if late := rec.DeadAt.Sub(rec.Event.Time.Add(maxAge)); late > ackWait+slack {
				t.Errorf("%s %s: dead-lettered %s after its deadline", epID, rec.Event.ID, late)
			}
		}
		if len(seen) != perEndpoint || len(page.Items) != perEndpoint {
			t.Errorf("%s: %d records for %d events", epID, len(page.Items), len(seen))
		}
	}
	// Nothing left in DELIVERIES: every delivery ended in a record.
	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(natsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var left uint64
	if !eventually(10*time.Second, func() bool {
		s, err := js.Stream(context.Background(), streams.StreamDeliveries)
		if err != nil {
			return false
		}
		left = s.CachedInfo().State.Msgs
		return left == 0
	}) {
		t.Fatalf("DELIVERIES still holds %d messages", left)
	}
	p2.stop()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
