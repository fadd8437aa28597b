package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/internal/openapi"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// serverRoutes are the routes internal/api mounts itself, beside the
// components' tables.
var serverRoutes = []string{"GET /healthz", "GET /readyz", "GET /metrics"}

// docOperations are the document's operations, as "METHOD /path/{param}".
func docOperations(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" {
				continue
			}
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(ops)
	return ops
}

// The OpenAPI document is valid OpenAPI 3.1 (checked by libopenapi's
// validator against the specification's schema), and it and the routes
// the serve role mounts agree in both directions: every mounted route is
// documented, and every documented operation is mounted.
func TestOpenAPIMatchesMountedRoutes(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(openapi.Document())
	if err != nil {
		t.Fatalf("libopenapi cannot read the document: %v", err)
	}
	if doc.GetVersion() != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.GetVersion())
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("the document is not valid OpenAPI 3.1: %v", e)
		}
	}

	env := streamstest.Start(t)
	fs := newFlagSet(roleServe, io.Discard)
	f := addServerFlags(fs, roleServe)
	if err := parseFlags(fs, nil, noEnv); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := buildComponents(ctx, f, env.JS, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range c.stops {
			if err := s.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	mounted := append([]string{}, serverRoutes...)
	for _, r := range c.routes {
		mounted = append(mounted, r.Method+" "+r.Pattern)
	}
	for _, r := range c.public {
		mounted = append(mounted, r.Method+" "+r.Pattern)
	}
	documented := docOperations(t)
	for _, m := range mounted {
		if !slices.Contains(documented, m) {
			t.Errorf("%s is mounted but not in internal/openapi/openapi.json", m)
		}
	}
	for _, d := range documented {
		if !slices.Contains(mounted, d) {
			t.Errorf("%s is in internal/openapi/openapi.json but not mounted", d)
		}
	}
	for _, want := range designRoutes {
		if !slices.Contains(documented, want) {
			t.Errorf("DESIGN.md's route %s is not documented", want)
		}
	}
	if !slices.Contains(documented, "POST /ingest/{source}") {
		t.Error("POST /ingest/{source} is not documented")
	}
}

// validating is an http.RoundTripper that checks every request the client
// sends and every answer the real server gives against the OpenAPI
// document, and notes which documented operation each was.
type validating struct {
	t     *testing.T
	v     validator.Validator
	ops   []opMatcher
	mu    sync.Mutex
	calls map[string]int
}

type opMatcher struct {
	op string
	re *regexp.Regexp
	// literal counts the path's literal segments: /v1/dlq/replay is tried
	// before /v1/dlq/{id}.
	literal int
}

func newValidating(t *testing.T) *validating {
	doc, err := libopenapi.NewDocument(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	vt := &validating{t: t, v: v, calls: map[string]int{}}
	for _, op := range docOperations(t) {
		method, path, _ := strings.Cut(op, " ")
		segs := strings.Split(path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, "{") {
				segs[i] = "[^/]+"
			} else {
				segs[i] = regexp.QuoteMeta(s)
			}
		}
		re := regexp.MustCompile("^" + method + " " + strings.Join(segs, "/") + "$")
		vt.ops = append(vt.ops, opMatcher{op: op, re: re, literal: strings.Count(path, "/") - strings.Count(path, "{")})
	}
	sort.SliceStable(vt.ops, func(i, j int) bool { return vt.ops[i].literal > vt.ops[j].literal })
	return vt
}

func (vt *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vresp := *resp
	vresp.Body = io.NopCloser(bytes.NewReader(respBody))
	key := req.Method + " " + req.URL.EscapedPath()
	op := ""
	for _, m := range vt.ops {
		if m.re.MatchString(key) {
			op = m.op
			break
		}
	}
	vt.mu.Lock()
	vt.calls[fmt.Sprintf("%s %d", op, resp.StatusCode)]++
	vt.calls[op]++
	vt.mu.Unlock()
	validate := vt.v.ValidateHttpRequestResponse
	if req.Context().Value(badRequest{}) != nil {
		// A request the document refuses, sent to see the server refuse it
		// too: only the answer must fit.
		validate = vt.v.ValidateHttpResponse
	}
	if op == "" {
		vt.t.Errorf("%s: no documented operation", key)
	} else if ok, errs := validate(vreq, &vresp); !ok {
		for _, e := range errs {
			vt.t.Errorf("%s (%s) answered %d %s: does not fit the document: %v", key, op, resp.StatusCode, short(string(respBody), 300), e)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	return resp, nil
}

// badRequest marks, in a request's context, a request sent to be refused.
type badRequest struct{}

// Every documented operation, called through package client against a real
// `hookstream serve`, answers what the document says: each request and each
// answer (errors included) is validated against it by libopenapi-validator,
// and the test fails if some operation was never called.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	t.Parallel()
	const token = "openapi-test-token"
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints", "--log-level", "error", "--api-token", token,
		"--retry-initial", "50ms", "--retry-max-interval", "100ms", "--retry-min-delay", "10ms", "--poll-tick", "20ms")
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/changes":
			fmt.Fprint(w, `{"changes":[],"next_cursor":"","has_more":false}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(receiver.Close)
	vt := newValidating(t)
	cl, err := client.New(srv.url, client.WithToken(token), client.WithHTTPClient(&http.Client{Transport: vt, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bad := context.WithValue(ctx, badRequest{}, true)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantStatus := func(what string, err error, code int) {
		t.Helper()
		if client.StatusOf(err) != code {
			t.Errorf("%s: %v, want a %d", what, err, code)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: not within the test's deadline", what)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	must("healthz", cl.Healthz(ctx))
	waitFor("readyz", func() bool { return cl.Readyz(ctx) == nil })
	okEP, err := cl.CreateEndpoint(ctx, client.EndpointCreate{URL: receiver.URL + "/ok?token=t", EventTypes: []string{"order.*"}, Description: "ok"})
	must("create endpoint", err)
	goneEP, err := cl.CreateEndpoint(ctx, client.EndpointCreate{URL: receiver.URL + "/gone", EventTypes: []string{"order.created"}, RateLimit: 5, Concurrency: 2})
	must("create endpoint", err)
	_, err = cl.CreateEndpoint(bad, client.EndpointCreate{URL: "ftp://x", EventTypes: []string{"a"}})
	wantStatus("create with a bad url", err, 400)
	_, err = cl.ListEndpoints(ctx, client.ListOptions{Limit: 1})
	must("list endpoints", err)
	_, err = cl.ListEndpoints(ctx, client.ListOptions{Cursor: "not.a.cursor"})
	wantStatus("list with a bad cursor", err, 400)
	_, err = cl.Endpoint(ctx, okEP.ID)
	must("show endpoint", err)
	noToken, err := client.New(srv.url, client.WithHTTPClient(&http.Client{Transport: vt}))
	must("client", err)
	_, err = noToken.Endpoint(bad, okEP.ID)
	wantStatus("without the token", err, 401)
	_, err = cl.Endpoint(ctx, "ep_nope")
	wantStatus("unknown endpoint", err, 404)
	_, err = cl.UpdateEndpoint(ctx, okEP.ID, client.EndpointUpdate{Description: client.Ptr("still ok")})
	must("update endpoint", err)
	_, err = cl.DisableEndpoint(ctx, okEP.ID)
	must("disable", err)
	_, err = cl.EnableEndpoint(ctx, okEP.ID)
	must("enable", err)
	_, err = cl.RotateSecret(ctx, okEP.ID)
	must("rotate", err)

	_, err = cl.Publish(ctx, client.Event{ID: "po-1", Type: "order.created", Source: "erp", Data: json.RawMessage(`{"n":1}`)})
	must("publish", err)
	_, err = cl.Publish(bad, client.Event{Type: "Bad Type", Data: json.RawMessage(`{}`)})
	wantStatus("publish a bad type", err, 400)
	_, err = cl.PublishBatch(ctx, []client.Event{{ID: "po-2", Type: "order.updated", Data: json.RawMessage(`{}`)}, {ID: "po-1", Type: "order.created", Source: "erp", Data: json.RawMessage(`{"n":1}`)}}, false)
	must("publish batch", err)
	_, err = cl.Event(ctx, "no-such-event")
	wantStatus("unknown event", err, 404)

	// 410 Gone dead-letters the delivery to goneEP at once.
	var dead []client.DeadLetter
	waitFor("a dead letter for the 410 endpoint", func() bool {
		p, err := cl.ListDeadLetters(ctx, client.DLQFilter{Endpoint: goneEP.ID}, client.ListOptions{})
		must("list dead letters", err)
		dead = p.Items
		return len(dead) > 0
	})
	waitFor("po-1 delivered to the ok endpoint", func() bool {
		ev, err := cl.Event(ctx, "po-1")
		must("show event", err)
		for _, d := range ev.Deliveries {
			if d.Endpoint == okEP.ID && d.State == client.DeliveryDelivered {
				return true
			}
		}
		return false
	})
	_, err = cl.Attempts(ctx, okEP.ID, client.ListOptions{Limit: 10})
	must("attempts", err)
	_, err = cl.ListDeadLetters(bad, client.DLQFilter{Reason: "timeout"}, client.ListOptions{})
	wantStatus("a bad reason", err, 400)
	rec, err := cl.DeadLetter(ctx, dead[0].ID)
	must("show dead letter", err)
	_, err = cl.DeadLetter(ctx, "dl_nope")
	wantStatus("unknown dead letter", err, 404)
	_, err = cl.ReplayDeadLetter(ctx, rec.ID)
	must("replay", err)
	_, err = cl.ReplayDeadLetter(ctx, rec.ID)
	wantStatus("replay twice", err, 409)
	started, err := cl.ReplayDeadLetters(ctx, client.DLQFilter{Endpoint: goneEP.ID, Since: time.Now().Add(-time.Hour)})
	must("bulk replay", err)
	waitFor("the bulk replay job", func() bool {
		j, err := cl.ReplayJob(ctx, started.Job)
		must("replay job", err)
		return j.Finished()
	})
	must("delete dead letter", cl.DeleteDeadLetter(ctx, rec.ID))

	src, err := cl.CreateSource(ctx, client.SourceCreate{ID: "erp", ChangesURL: receiver.URL + "/changes", Interval: client.Duration(time.Minute),
		Headers: map[string]string{"Authorization": "Bearer x"}})
	must("create source", err)
	_, err = cl.CreateSource(ctx, client.SourceCreate{ID: "erp", ChangesURL: receiver.URL + "/changes"})
	wantStatus("create a source twice", err, 409)
	gh, err := cl.CreateSource(ctx, client.SourceCreate{ID: "gh", Inbound: &client.Inbound{Format: client.InboundGitHub}})
	must("create an inbound source", err)
	_, err = cl.ListSources(ctx, client.ListOptions{})
	must("list sources", err)
	_, err = cl.Source(ctx, src.ID)
	must("show source", err)
	_, err = cl.UpdateSource(ctx, src.ID, client.SourceUpdate{Interval: client.Ptr(client.Duration(2 * time.Minute))})
	must("update source", err)
	gh, err = cl.RotateSourceSecret(ctx, gh.ID, "")
	must("rotate the source's secret", err)

	push := []byte(`{"action":"opened","number":7}`)
	mac := hmac.New(sha256.New, []byte(gh.Inbound.Secret))
	mac.Write(push)
	h := http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}, "X-Github-Delivery": {"d-1"}, "X-Github-Event": {"issues"}, "Content-Type": {"application/json"}}
	_, err = cl.Ingest(ctx, gh.ID, h, push)
	must("ingest", err)
	h.Set("X-Hub-Signature-256", "sha256=00")
	_, err = cl.Ingest(bad, gh.ID, h, push)
	wantStatus("ingest with a wrong signature", err, 401)
	_, err = cl.Ingest(bad, "nope", h, push)
	wantStatus("ingest for an unknown source", err, 404)

	must("delete source", cl.DeleteSource(ctx, src.ID))
	must("delete endpoint", cl.DeleteEndpoint(ctx, okEP.ID))
	resp, err := (&http.Client{Transport: vt}).Get(srv.url + "/metrics")
	must("metrics", err)
	resp.Body.Close()

	vt.mu.Lock()
	defer vt.mu.Unlock()
	for _, op := range docOperations(t) {
		if vt.calls[op] == 0 {
			t.Errorf("%s was never called: the test cannot say the document describes its answers", op)
		}
	}
}
