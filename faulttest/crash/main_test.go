// Package crash holds hookstream's fault tests on one machine: kill -9 of
// the real binary in the middle of a backlog, endpoints that misbehave
// (flapping, answering after the timeout, streaming a huge body,
// redirecting) and graceful shutdown under load. It has no non-test code;
// TestMain builds the binary the process tests drive.
package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// binPath is the hookstream binary TestMain built.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookstream-crash-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	if err := buildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := streamstest.RunAndCheckLeaks(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds ./cmd/hookstream of this module into dir.
func buildBinary(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("go env GOMOD: not inside the hookstream module")
	}
	binPath = filepath.Join(dir, "hookstream")
	cmd := exec.Command("go", "build", "-o", binPath, "./cmd/hookstream")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/hookstream: %w\n%s", err, out)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail is the last n bytes of the buffer, for failure messages.
func (s *syncBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		return "…" + str[len(str)-n:]
	}
	return str
}

// proc is one `hookstream serve` process of the built binary.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{} // closed once the process was waited for
	err    error         // Wait's result; read only after exited
}

var listenRE = regexp.MustCompile(`hookstream serve: listening on (http://\S+)`)

// startServe starts `hookstream serve` on dataDir, on a free loopback port,
// with private endpoints allowed and the given extra flags, and waits until
// it prints that it listens. The process is killed when the test ends if it
// still runs.
func startServe(t *testing.T, dataDir string, flags ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data", dataDir, "--http", "127.0.0.1:0", "--allow-private-endpoints"}, flags...)
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = serveEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start hookstream: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.done() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("hookstream %v stderr: %s", args[1:], p.stderr.tail(4000))
		}
	})
	streamstest.WaitFor(t, 30*time.Second, "hookstream serve to listen", func() bool {
		return p.done() || listenRE.MatchString(p.stdout.String())
	})
	m := listenRE.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("hookstream serve exited before listening (%v): %s", p.err, p.stderr.tail(4000))
	}
	p.url = m[1]
	return p
}

// serveEnv is the test's environment without HOOKSTREAM_* variables, so
// that only the flags configure the server.
func serveEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKSTREAM_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.done() {
		p.t.Fatalf("kill: %v", err)
	}
	<-p.exited
}

// terminate sends SIGTERM and waits up to within for the process to exit,
// reporting whether it did; one that did not is killed.
func (p *proc) terminate(within time.Duration) bool {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.done() {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-p.exited:
		return true
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return false
	}
}

// stop shuts the process down gracefully and fails the test unless it
// exits with 0 in time.
func (p *proc) stop() {
	p.t.Helper()
	if !p.terminate(30 * time.Second) {
		p.t.Errorf("hookstream did not exit within 30s of SIGTERM")
		return
	}
	if p.err != nil {
		p.t.Errorf("hookstream exited with %v: %s", p.err, p.stderr.tail(2000))
	}
}

// api is a client of one process's HTTP API.
type api struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newAPI(t *testing.T, base string, conns int) *api {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns}
	t.Cleanup(tr.CloseIdleConnections)
	return &api{t: t, base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do sends a JSON request and decodes a JSON answer into out (when not
// nil), returning the status code.
func (a *api) do(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// addEndpoint registers an endpoint for url through POST /v1/endpoints and
// returns its id.
func (a *api) addEndpoint(url string, types ...string) string {
	a.t.Helper()
	var ep struct{ ID, Secret string }
	code, err := a.do(http.MethodPost, "/v1/endpoints", map[string]any{"url": url, "event_types": types}, &ep)
	if err != nil || code != http.StatusCreated || ep.ID == "" || !strings.HasPrefix(ep.Secret, webhook.SecretPrefix) {
		a.t.Fatalf("POST /v1/endpoints %s: %d %v %+v", url, code, err, ep)
	}
	return ep.ID
}

// publish posts one event and reports whether it was accepted (202).
func (a *api) publish(id, typ string) (bool, error) {
	var ans struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	code, err := a.do(http.MethodPost, "/v1/events", map[string]any{"id": id, "type": typ, "data": map[string]any{"id": id}}, &ans)
	if err != nil {
		return false, err
	}
	if code != http.StatusAccepted {
		return false, fmt.Errorf("POST /v1/events %s: status %d", id, code)
	}
	if ans.ID != id {
		return false, fmt.Errorf("POST /v1/events %s: answered id %q", id, ans.ID)
	}
	return true, nil
}

// eventView is the part of GET /v1/events/{id} the tests read.
type eventView struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Deliveries []struct {
		Endpoint string `json:"endpoint"`
		State    string `json:"state"`
	} `json:"deliveries"`
}

// receiver is a webhook endpoint in the test process that counts requests
// per webhook-id, and those it answered 2xx to a client still waiting.
type receiver struct {
	srv   *httptest.Server
	delay time.Duration

	mu     sync.Mutex
	got    map[string]int // requests per webhook-id
	ok     map[string]int // 2xx answers per webhook-id
	flying map[string]int // requests being handled now, per webhook-id
	last   time.Time      // when the latest request came in
}

func newReceiver(t *testing.T, delay time.Duration) *receiver {
	r := &receiver{delay: delay, got: map[string]int{}, ok: map[string]int{}, flying: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	r.got[id]++
	r.flying[id]++
	r.last = time.Now()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.flying[id]--; r.flying[id] == 0 {
			delete(r.flying, id)
		}
		r.mu.Unlock()
	}()
	if r.delay > 0 {
		// The endpoint's own work, not a test waiting for something.
		timer := time.NewTimer(r.delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-req.Context().Done():
			return // the dispatcher gave up: no answer reached it
		}
	}
	if req.Context().Err() != nil {
		return
	}
	r.mu.Lock()
	r.ok[id]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// counts returns copies of the request and 2xx counts per webhook-id.
func (r *receiver) counts() (got, ok map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got, ok = make(map[string]int, len(r.got)), make(map[string]int, len(r.ok))
	for k, v := range r.got {
		got[k] = v
	}
	for k, v := range r.ok {
		ok[k] = v
	}
	return got, ok
}

// total is how many requests the receiver got.
func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.got {
		n += c
	}
	return n
}

// distinct is how many of ids the receiver got at least once.
func (r *receiver) distinct(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.got[id] > 0 {
			n++
		}
	}
	return n
}

// distinctOK is how many of ids the receiver answered 2xx at least once.
func (r *receiver) distinctOK(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.ok[id] > 0 {
			n++
		}
	}
	return n
}

// inFlight returns the webhook-ids of the requests being handled now, and
// how long ago the latest request came in.
func (r *receiver) inFlight() ([]string, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.flying))
	for id := range r.flying {
		ids = append(ids, id)
	}
	return ids, time.Since(r.last)
}

// eventually polls cond every few milliseconds until it holds or timeout
// passes, and reports whether it held; unlike streamstest.WaitFor it lets
// the test report its counts before failing.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// publishAll publishes ids (of type typ) with conns concurrent clients and
// returns the accepted ones, in the order of ids, and the first errors.
func publishAll(a *api, ids []string, typ string, conns int) (accepted []string, errs []error) {
	ok := make([]bool, len(ids))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				acc, err := a.publish(ids[i], typ)
				ok[i] = acc
				if err != nil {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, id := range ids {
		if ok[i] {
			accepted = append(accepted, id)
		}
	}
	return accepted, errs
}
