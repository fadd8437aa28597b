package hookstreamtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/webhook"
)

// maxBody bounds a recorded request's body.
const maxBody = 10 << 20

// Request is one webhook the Receiver got.
type Request struct {
	// Endpoint is the id of the endpoint it was sent for.
	Endpoint string
	// ID is the webhook-id, the event id: the same on every retry and replay.
	ID string
	// Type, Source, Timestamp and Data are the body's fields.
	Type      string
	Source    string
	Timestamp time.Time
	Data      json.RawMessage
	// Attempt counts the requests with this ID to this endpoint, from 1.
	Attempt int
	// Verified is nil when the signature verified with the endpoint's
	// secret (webhook.VerifyRequest), the reason otherwise; the Receiver
	// answers 401 then, as a real receiver would.
	Verified error
	// Status is what the Receiver answered.
	Status int
	Header http.Header
	Body   []byte
}

// Receiver is an HTTP server that verifies the webhooks it gets with their
// endpoint's secret and records them. It answers 204, or what Respond says.
type Receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	targets  map[string]*target // by path
	next     int
	got      []Request
	changed  chan struct{} // closed and replaced on every request
	respond  func(Request) int
	attempts map[string]int
}

// target is one endpoint's URL at the Receiver.
type target struct {
	keys     [][]byte
	endpoint string
}

func newReceiver() *Receiver {
	r := &Receiver{targets: map[string]*target{}, changed: make(chan struct{}), attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *Receiver) close() { r.srv.Close() }

// URL is the Receiver's base URL.
func (r *Receiver) URL() string { return r.srv.URL }

// newTarget makes a URL and a secret for a new endpoint.
func (r *Receiver) newTarget() (url, secret string, err error) {
	secret, err = webhook.GenerateSecret()
	if err != nil {
		return "", "", err
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return "", "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	path := "/hooks/" + strconv.Itoa(r.next)
	r.targets[path] = &target{keys: [][]byte{key}}
	return r.srv.URL + path, secret, nil
}

func (r *Receiver) bind(url, endpoint string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.targets[strings.TrimPrefix(url, r.srv.URL)]; t != nil {
		t.endpoint = endpoint
	}
}

// AddSecret makes the Receiver accept webhooks for endpoint signed with
// secret too: after Client.RotateSecret, give it the new one.
func (r *Receiver) AddSecret(endpoint, secret string) error {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.targets {
		if t.endpoint == endpoint {
			t.keys = append(t.keys, key)
			return nil
		}
	}
	return fmt.Errorf("hookstreamtest: endpoint %s was not made by Subscribe", endpoint)
}

// Respond makes f choose the status of every request from now on (after
// verification: a request that does not verify is answered 401). Answer
// 500 to have a delivery retried, 410 to have its endpoint disabled and the
// delivery dead-lettered; nil restores 204.
func (r *Receiver) Respond(f func(Request) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.respond = f
}

func (r *Receiver) serve(w http.ResponseWriter, hr *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or cut short", http.StatusBadRequest)
		return
	}
	req := Request{ID: hr.Header.Get(webhook.HeaderID), Header: hr.Header.Clone(), Body: body}
	var b struct {
		Type      string          `json:"type"`
		Source    string          `json:"source"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err == nil {
		req.Type, req.Source, req.Timestamp, req.Data = b.Type, b.Source, b.Timestamp, b.Data
	}
	r.mu.Lock()
	t := r.targets[hr.URL.Path]
	respond := r.respond
	r.mu.Unlock()
	switch {
	case t == nil:
		req.Verified = errors.New("hookstreamtest: no endpoint of Subscribe's has this URL")
	default:
		req.Endpoint = t.endpoint
		req.Verified = webhook.VerifyRequest(hr.Header, body, time.Now(), webhook.DefaultTolerance, t.keys...)
	}
	r.mu.Lock()
	key := req.Endpoint + "\x00" + req.ID
	r.attempts[key]++
	req.Attempt = r.attempts[key]
	r.mu.Unlock()
	req.Status = http.StatusNoContent
	switch {
	case req.Verified != nil:
		req.Status = http.StatusUnauthorized
	case respond != nil:
		req.Status = respond(req)
	}
	r.mu.Lock()
	r.got = append(r.got, req)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	w.WriteHeader(req.Status)
}

// Requests are the requests received so far, in order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.got...)
}

// Wait waits (at most WaitDefault) until at least n requests were answered
// 2xx, and returns those; it fails t otherwise, listing what came.
func (r *Receiver) Wait(t testing.TB, n int) []Request {
	t.Helper()
	var ok []Request
	r.WaitFor(t, fmt.Sprintf("%d delivered webhooks", n), func(got []Request) bool {
		ok = ok[:0]
		for _, g := range got {
			if g.Status >= 200 && g.Status < 300 {
				ok = append(ok, g)
			}
		}
		return len(ok) >= n
	})
	return ok
}

// WaitFor waits (at most WaitDefault) until cond holds for the requests
// received so far; it fails t otherwise, naming what.
func (r *Receiver) WaitFor(t testing.TB, what string, cond func([]Request) bool) {
	t.Helper()
	if err := r.wait(WaitDefault, cond); err != nil {
		t.Fatalf("hookstreamtest: waiting for %s: %v", what, err)
	}
}

// WaitTimeout is WaitFor for use outside a test: it returns an error after
// timeout.
func (r *Receiver) WaitTimeout(timeout time.Duration, cond func([]Request) bool) error {
	return r.wait(timeout, cond)
}

func (r *Receiver) wait(timeout time.Duration, cond func([]Request) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got := append([]Request(nil), r.got...)
		changed := r.changed
		r.mu.Unlock()
		if cond(got) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			var b strings.Builder
			for _, g := range got {
				fmt.Fprintf(&b, "\n  %s %s to %s: %d", g.ID, g.Type, g.Endpoint, g.Status)
			}
			return fmt.Errorf("not within %s; %d requests came:%s", timeout, len(got), b.String())
		}
	}
}
