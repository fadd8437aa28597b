package dashboard_test

import (
	"bytes"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// The tests against the real binary build it once, into binDir, which
// TestMain removes.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

// hookstreamBinary builds ./cmd/hookstream of this module, once.
func hookstreamBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			binError = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			binError = errors.New("go env GOMOD: not inside the hookstream module")
			return
		}
		if binDir, err = os.MkdirTemp("", "hookstream-dashboard-"); err != nil {
			binError = err
			return
		}
		binPath = filepath.Join(binDir, "hookstream")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/hookstream")
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			binError = fmt.Errorf("go build ./cmd/hookstream: %w\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// removeBinary is TestMain's cleanup.
func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// lockedBuffer is a process's output, safe to read while it writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenRE = regexp.MustCompile(`hookstream serve: listening on (http://\S+)`)

// server is one `hookstream serve` of the built binary.
type server struct {
	URL   string
	Token string
}

// startServe runs `hookstream serve` on a temp store and a free loopback
// port, with private endpoints allowed, durations scaled down so that a
// failing delivery is dead-lettered within about two seconds (after three
// attempts, two of them in the attempt log: the one that dead-letters it is
// not logged), and token as --api-token. It is stopped (SIGTERM, then kill) when the test ends.
func startServe(t *testing.T, token string) *server {
	t.Helper()
	args := []string{"serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "warn", "--retry-initial", "50ms", "--retry-max-interval", "100ms", "--retry-max-age", "2s",
		"--ack-wait", "3s", "--delivery-timeout", "1s", "--failing-after", "2", "--api-token", token}
	cmd := exec.Command(hookstreamBinary(t), args...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKSTREAM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookstream: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("hookstream serve stderr:\n%s", stderr.String())
		}
	})
	streamstest.WaitFor(t, 30*time.Second, "hookstream serve to listen", func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return listenRE.MatchString(stdout.String())
	})
	m := listenRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("hookstream serve exited before listening:\n%s", stderr.String())
	}
	return &server{URL: m[1], Token: token}
}

// api calls the JSON API with the server's token and decodes the answer
// into out (nil: ignore it); it fails the test on a status other than want.
func (s *server) api(t *testing.T, method, path string, in any, want int, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// receiver is a webhook endpoint that answers 503 until up is set, and
// records the webhook-id of every request it got. It also serves an empty
// change feed at /changes, for a source.
type receiver struct {
	*httptest.Server
	up atomic.Bool

	mu        sync.Mutex
	got       []string // webhook-id of every request
	delivered []string // webhook-id of the requests answered 2xx
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/changes" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"changes":[],"next_cursor":"c-1","has_more":false}`)
			return
		}
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		rc.got = append(rc.got, id)
		up := rc.up.Load()
		if up {
			rc.delivered = append(rc.delivered, id)
		}
		rc.mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"down for maintenance"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// count is how many requests with webhook-id id were got and delivered.
func (rc *receiver) count(id string) (got, delivered int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, g := range rc.got {
		if g == id {
			got++
		}
	}
	for _, d := range rc.delivered {
		if d == id {
			delivered++
		}
	}
	return got, delivered
}

// failingDelivery creates an endpoint on rc (which is down), publishes
// event id to it and waits for its dead letter; it returns the endpoint's
// and the dead letter's ids.
func failingDelivery(t *testing.T, s *server, rc *receiver, id string) (endpoint, deadLetter string) {
	t.Helper()
	var ep struct{ ID string }
	s.api(t, http.MethodPost, "/v1/endpoints", map[string]any{
		"url": rc.URL + "/hook", "event_types": []string{"order.*"}, "description": "ERP order sync",
	}, http.StatusCreated, &ep)
	s.api(t, http.MethodPost, "/v1/events", map[string]any{
		"id": id, "type": "order.created", "source": "erp", "data": map[string]any{"order_id": id, "total": 42},
	}, http.StatusAccepted, nil)
	var dl struct {
		Items []struct{ ID string } `json:"items"`
	}
	streamstest.WaitFor(t, 30*time.Second, "the dead letter", func() bool {
		s.api(t, http.MethodGet, "/v1/dlq?endpoint="+ep.ID, nil, http.StatusOK, &dl)
		return len(dl.Items) == 1
	})
	// The attempt log is written asynchronously, after the attempt.
	var attempts struct {
		Items []struct{} `json:"items"`
	}
	streamstest.WaitFor(t, 30*time.Second, "the attempt log", func() bool {
		s.api(t, http.MethodGet, "/v1/endpoints/"+ep.ID+"/attempts", nil, http.StatusOK, &attempts)
		return len(attempts.Items) > 0
	})
	return ep.ID, dl.Items[0].ID
}

func ioCopy(w io.Writer, resp *http.Response) (int64, error) { return io.Copy(w, resp.Body) }
