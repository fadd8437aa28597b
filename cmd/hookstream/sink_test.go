package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// Two 32-byte keys and their secrets.
var (
	sinkKey     = bytes.Repeat([]byte{0x42}, 32)
	sinkKey2    = bytes.Repeat([]byte{0x17}, 32)
	sinkSecret  = "whsec_" + base64.StdEncoding.EncodeToString(sinkKey)
	sinkSecret2 = "whsec_" + base64.StdEncoding.EncodeToString(sinkKey2)
)

// handSign is a Standard Webhooks signature built from the definition:
// "v1," + base64(HMAC-SHA256(key, id + "." + ts + "." + body)).
func handSign(key []byte, id string, ts int64, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sinkBundle is a sink behind an httptest server.
type sinkBundle struct {
	sink *sink
	out  *syncBuffer
	url  string
}

func setupSink(t *testing.T, cfg sinkConfig) *sinkBundle {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	if err := cfg.withDefaults().validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	out := &syncBuffer{}
	h := newSink(cfg, out)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &sinkBundle{sink: h.(*sink), out: out, url: srv.URL}
}

// post sends a webhook signed with key (nil: unsigned) at testNow and
// returns the answer's status and Retry-After.
func (b *sinkBundle) post(t *testing.T, key []byte, id, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("webhook-id", id)
	}
	ts := testNow.Unix()
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if key != nil {
		req.Header.Set("webhook-signature", handSign(key, id, ts, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func (b *sinkBundle) lines() []string {
	s := strings.TrimSuffix(b.out.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var lineRE = regexp.MustCompile(`^(\S+) id=(\S+) type=(\S+) attempt=(\d+) signature=(valid|invalid|unchecked) status=(\d+)$`)

func TestSinkSignature(t *testing.T) {
	t.Parallel()
	body := `{"id":"msg_1","type":"order.created","data":{"n":1}}`

	tests := []struct {
		name     string
		cfg      sinkConfig
		key      []byte
		id       string
		wantCode int
		wantSig  string
	}{
		{name: "valid", cfg: sinkConfig{Keys: [][]byte{sinkKey}}, key: sinkKey, id: "msg_1", wantCode: 200, wantSig: "valid"},
		{name: "valid under the second key", cfg: sinkConfig{Keys: [][]byte{sinkKey, sinkKey2}}, key: sinkKey2, id: "msg_1", wantCode: 200, wantSig: "valid"},
		{name: "wrong key", cfg: sinkConfig{Keys: [][]byte{sinkKey}}, key: sinkKey2, id: "msg_1", wantCode: 401, wantSig: "invalid"},
		{name: "unsigned", cfg: sinkConfig{Keys: [][]byte{sinkKey}}, key: nil, id: "msg_1", wantCode: 401, wantSig: "invalid"},
		{name: "no webhook-id", cfg: sinkConfig{Keys: [][]byte{sinkKey}}, key: sinkKey, id: "", wantCode: 401, wantSig: "invalid"},
		{name: "no-verify still reports", cfg: sinkConfig{Keys: [][]byte{sinkKey}, NoVerify: true}, key: sinkKey2, id: "msg_1", wantCode: 200, wantSig: "invalid"},
		{name: "no-verify without keys", cfg: sinkConfig{NoVerify: true}, key: nil, id: "msg_1", wantCode: 200, wantSig: "unchecked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSink(t, tt.cfg)
			code, _ := b.post(t, tt.key, tt.id, body)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d", code, tt.wantCode)
			}
			lines := b.lines()
			if len(lines) != 1 {
				t.Fatalf("printed %d lines, want 1: %q", len(lines), lines)
			}
			m := lineRE.FindStringSubmatch(lines[0])
			if m == nil {
				t.Fatalf("line %q is not in the sink's format", lines[0])
			}
			wantID := tt.id
			if wantID == "" {
				wantID = "-"
			}
			if ts, err := time.Parse(time.RFC3339, m[1]); err != nil || !ts.Equal(testNow) {
				t.Errorf("line time %q = %v (%v), want %v", m[1], ts, err, testNow)
			}
			if m[2] != wantID || m[3] != "order.created" || m[4] != "1" || m[5] != tt.wantSig || m[6] != strconv.Itoa(tt.wantCode) {
				t.Errorf("line %q: want id=%s type=order.created attempt=1 signature=%s status=%d", lines[0], wantID, tt.wantSig, tt.wantCode)
			}
		})
	}
}

func TestSinkStaleTimestampIsInvalid(t *testing.T) {
	t.Parallel()
	// The sink's clock is an hour ahead of the signature's timestamp.
	b := setupSink(t, sinkConfig{Keys: [][]byte{sinkKey}, Now: func() time.Time { return testNow.Add(time.Hour) }})
	if code, _ := b.post(t, sinkKey, "msg_1", `{}`); code != 401 {
		t.Errorf("status = %d, want 401 for a replayed request", code)
	}
}

func TestSinkFailFirstPerID(t *testing.T) {
	t.Parallel()
	b := setupSink(t, sinkConfig{Keys: [][]byte{sinkKey}, FailFirst: 2})
	var got []string
	for _, id := range []string{"a", "a", "b", "a", "b", "b"} {
		code, ra := b.post(t, sinkKey, id, `{"type":"x.y"}`)
		if ra != "" {
			t.Errorf("Retry-After %q without --retry-after", ra)
		}
		got = append(got, fmt.Sprintf("%s:%d", id, code))
	}
	want := "a:500 a:500 b:500 a:200 b:500 b:200"
	if strings.Join(got, " ") != want {
		t.Errorf("answers %q, want %q", strings.Join(got, " "), want)
	}
	if b.sink.Received("a") != 3 || b.sink.Received("b") != 3 || b.sink.Received("c") != 0 || b.sink.Total() != 6 {
		t.Errorf("Received a=%d b=%d c=%d Total=%d, want 3 3 0 6", b.sink.Received("a"), b.sink.Received("b"), b.sink.Received("c"), b.sink.Total())
	}
	lines := b.lines()
	if len(lines) != 6 || !strings.Contains(lines[3], "id=a type=x.y attempt=3 signature=valid status=200") {
		t.Errorf("lines %q", lines)
	}
}

func TestSinkStatusAndRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    sinkConfig
		codes  []int
		ra     []string
		status []string // in the lines
	}{
		{name: "status 410", cfg: sinkConfig{Status: 410}, codes: []int{410, 410}, ra: []string{"", ""}},
		{name: "retry-after makes failures 503", cfg: sinkConfig{FailFirst: 1, RetryAfter: 2500 * time.Millisecond}, codes: []int{503, 200}, ra: []string{"3", ""}},
		{name: "retry-after on a failing status", cfg: sinkConfig{Status: 429, RetryAfter: 7 * time.Second}, codes: []int{429, 429}, ra: []string{"7", "7"}},
		{name: "fail-first before status", cfg: sinkConfig{FailFirst: 1, Status: 202}, codes: []int{500, 202}, ra: []string{"", ""}},
		{name: "delay then answer", cfg: sinkConfig{Delay: time.Millisecond}, codes: []int{200, 200}, ra: []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Keys = [][]byte{sinkKey}
			b := setupSink(t, tt.cfg)
			for i := range tt.codes {
				code, ra := b.post(t, sinkKey, "msg_1", `{}`)
				if code != tt.codes[i] || ra != tt.ra[i] {
					t.Errorf("request %d: %d Retry-After %q, want %d %q", i+1, code, ra, tt.codes[i], tt.ra[i])
				}
				if line := b.lines()[i]; !strings.HasSuffix(line, " status="+strconv.Itoa(tt.codes[i])) {
					t.Errorf("line %q does not end with status=%d", line, tt.codes[i])
				}
			}
		})
	}
}

func TestSinkFailRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rate float64
		rnd  func() float64 // nil: the real random source
		want int
	}{
		{name: "0 never fails", rate: 0, want: 200},
		{name: "1 always fails", rate: 1, want: 500},
		{name: "draw below the rate fails", rate: 0.5, rnd: func() float64 { return 0.49 }, want: 500},
		{name: "draw at the rate passes", rate: 0.5, rnd: func() float64 { return 0.5 }, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSink(t, sinkConfig{Keys: [][]byte{sinkKey}, FailRate: tt.rate, Rand: tt.rnd})
			for i := range 20 {
				if code, _ := b.post(t, sinkKey, "msg_"+strconv.Itoa(i), `{}`); code != tt.want {
					t.Fatalf("request %d: %d, want %d", i, code, tt.want)
				}
			}
		})
	}
}

func TestSinkConcurrentRequests(t *testing.T) {
	t.Parallel()
	b := setupSink(t, sinkConfig{Keys: [][]byte{sinkKey}})
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { b.post(t, sinkKey, "same", `{"type":"a.b"}`) })
	}
	wg.Wait()
	if b.sink.Received("same") != n || b.sink.Total() != n {
		t.Fatalf("Received %d, Total %d, want %d", b.sink.Received("same"), b.sink.Total(), n)
	}
	seen := map[string]bool{}
	for _, line := range b.lines() {
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("garbled line %q", line)
		}
		seen[m[4]] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Errorf("no line with attempt=%d", i)
		}
	}
}

func TestSinkRequestLimits(t *testing.T) {
	t.Parallel()
	b := setupSink(t, sinkConfig{Keys: [][]byte{sinkKey}})

	resp, err := http.Get(b.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}

	big := `{"pad":"` + strings.Repeat("x", SinkMaxBody) + `"}`
	if code, _ := b.post(t, sinkKey, "big", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 10 MiB: %d, want 413", code)
	}
}

func TestSinkDelayEndsWithTheRequest(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := newSink(sinkConfig{NoVerify: true, Delay: time.Hour, Now: func() time.Time { return testNow }}, out)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the sender has already given up
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(`{"type":"a.b"}`))
	req.Header.Set("webhook-id", "msg_1")
	s.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.HasSuffix(out.String(), "id=msg_1 type=a.b attempt=1 signature=unchecked status=499\n") {
		t.Errorf("line %q, want status=499 for a sender that hung up", out.String())
	}
}

func TestSinkLineValues(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":           "-",
		"msg_1":      "msg_1",
		"crm:42":     "crm:42",
		"a b":        `"a b"`,
		"x\nid=fake": `"x\nid=fake"`,
	} {
		if got := lineValue(in); got != want {
			t.Errorf("lineValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSinkConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  sinkConfig
		want string
	}{
		{sinkConfig{}, "--secret: required unless --no-verify"},
		{sinkConfig{NoVerify: true, FailFirst: -1}, "--fail-first"},
		{sinkConfig{NoVerify: true, Status: 99}, "--status"},
		{sinkConfig{NoVerify: true, Status: 600}, "--status"},
		{sinkConfig{NoVerify: true, Delay: -time.Second}, "--delay"},
		{sinkConfig{NoVerify: true, RetryAfter: -time.Second}, "--retry-after"},
		{sinkConfig{NoVerify: true, FailRate: 1.5}, "--fail-rate"},
		{sinkConfig{NoVerify: true, FailRate: -0.1}, "--fail-rate"},
	}
	for _, tt := range tests {
		err := tt.cfg.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("validate(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
	if err := (sinkConfig{Keys: [][]byte{sinkKey}}).withDefaults().validate(); err != nil {
		t.Errorf("a valid config: %v", err)
	}
}

func TestSinkCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: mapEnv(map[string]string{"HOOKSTREAM_SINK_SECRET": sinkSecret + "," + sinkSecret2}), now: func() time.Time { return testNow }}
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, []string{"sink", "--listen", "127.0.0.1:0", "--fail-first", "1"}) }()

	listening := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)\n`)
	streamstest.WaitFor(t, 10*time.Second, "the sink to listen", func() bool { return listening.MatchString(out.String()) })
	b := &sinkBundle{out: &out, url: listening.FindStringSubmatch(out.String())[1]}

	// Both secrets from the environment twin verify; --fail-first applies.
	if code, _ := b.post(t, sinkKey2, "msg_1", `{"type":"a.b"}`); code != 500 {
		t.Errorf("first attempt: %d, want 500", code)
	}
	if code, _ := b.post(t, sinkKey, "msg_1", `{"type":"a.b"}`); code != 200 {
		t.Errorf("second attempt: %d, want 200", code)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("sink exited %d on Ctrl-C, stderr %q", code, errb.String())
	}
	lines := b.lines()
	if len(lines) != 3 || !strings.HasSuffix(lines[1], "id=msg_1 type=a.b attempt=1 signature=valid status=500") ||
		!strings.HasSuffix(lines[2], "id=msg_1 type=a.b attempt=2 signature=valid status=200") {
		t.Errorf("output %q", lines)
	}
}

func TestSinkCommandUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    string
		notWant string
	}{
		{name: "no secret", args: []string{"sink"}, want: "sink: --secret: required unless --no-verify"},
		{name: "bad secret", args: []string{"sink", "--secret", sinkSecret + ",whsec_short"}, want: "--secret #2: invalid webhook secret", notWant: "whsec_short"},
		{name: "bad fail rate", args: []string{"sink", "--no-verify", "--fail-rate", "2"}, want: "--fail-rate: must be from 0 to 1"},
		{name: "bad status", args: []string{"sink", "--no-verify", "--status", "42"}, want: "--status: must be an HTTP status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, context.Background(), nil, "", tt.args...)
			wantOneErrorLine(t, r, 2, tt.want)
			if tt.notWant != "" && strings.Contains(r.stderr, tt.notWant) {
				t.Errorf("stderr %q shows the secret", r.stderr)
			}
		})
	}
}
