package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode"

	"github.com/hookstream/hookstream/webhook"
)

// Defaults of `hookstream sink`.
const (
	// SinkListenDefault is where the sink listens.
	SinkListenDefault = "127.0.0.1:9000"
	// SinkStatusDefault is the answer to a request no failure rule hits.
	SinkStatusDefault = http.StatusOK
	// SinkMaxBody bounds a request body; a larger one is answered 413.
	SinkMaxBody = 10 << 20
	// SinkShutdownTimeout bounds the wait for answers in flight at exit.
	SinkShutdownTimeout = 5 * time.Second
)

// statusClientGone is what the sink's line says of a request whose sender
// hung up during --delay: nothing was answered (nginx's 499 convention).
const statusClientGone = 499

// sinkConfig configures the sink handler.
type sinkConfig struct {
	// Keys verify webhook-signature. Empty only with NoVerify.
	Keys [][]byte
	// NoVerify answers requests whatever their signature (checked, and
	// printed, when Keys are given). Defaults to false: invalid answers 401.
	NoVerify bool
	// FailFirst answers 500 (503 with RetryAfter) to the first FailFirst
	// attempts of each webhook-id. Defaults to 0.
	FailFirst int
	// Status answers every request no other rule fails. Defaults to
	// SinkStatusDefault (200).
	Status int
	// Delay is waited before each answer, or until the sender gives up.
	// Defaults to 0.
	Delay time.Duration
	// RetryAfter, when set, adds "Retry-After: <seconds, rounded up>" to
	// failure answers and makes simulated failures answer 503. Defaults to 0
	// (not set).
	RetryAfter time.Duration
	// FailRate fails that fraction of requests (0 to 1) at random with 500
	// (503 with RetryAfter). Defaults to 0.
	FailRate float64
	// Now is the clock signatures are verified against and lines stamped
	// with. Defaults to time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for FailRate. Defaults to
	// math/rand/v2's Float64.
	Rand func() float64
	// CheckOrder verifies, per ordering_key, that no two requests overlap
	// in time and that data.seq (when the publisher numbers a key's events
	// 0, 1, 2, …) never goes back nor skips one, and prints a line per
	// violation. Defaults to false.
	CheckOrder bool
}

func (c sinkConfig) withDefaults() sinkConfig {
	if c.Status == 0 {
		c.Status = SinkStatusDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

func (c sinkConfig) validate() error {
	switch {
	case len(c.Keys) == 0 && !c.NoVerify:
		return errors.New("--secret: required unless --no-verify")
	case c.FailFirst < 0:
		return fmt.Errorf("--fail-first: must not be negative, got %d", c.FailFirst)
	case c.Status < 200 || c.Status > 599:
		return fmt.Errorf("--status: must be an HTTP status from 200 to 599, got %d", c.Status)
	case c.Delay < 0:
		return fmt.Errorf("--delay: must not be negative, got %s", c.Delay)
	case c.RetryAfter < 0:
		return fmt.Errorf("--retry-after: must not be negative, got %s", c.RetryAfter)
	case math.IsNaN(c.FailRate) || c.FailRate < 0 || c.FailRate > 1:
		return fmt.Errorf("--fail-rate: must be from 0 to 1, got %g", c.FailRate)
	}
	return nil
}

// sink is the receiver behind `hookstream sink`: it verifies each webhook,
// counts attempts per webhook-id, prints one line per request and answers as
// its failure rules say. Safe for concurrent requests.
type sink struct {
	cfg sinkConfig

	mu     sync.Mutex // guards counts, total, keys, violations and writes to out
	out    io.Writer
	counts map[string]int
	total  int
	// keys is the order check's state per ordering key.
	keys       map[string]*keyOrder
	violations int
}

// keyOrder is what the order check knows of one ordering key.
type keyOrder struct {
	inFlight int
	last     float64 // data.seq of the last delivery answered 2xx
	seen     bool
}

// newSink returns the sink handler; cfg should have passed validate. Lines go
// to out.
func newSink(cfg sinkConfig, out io.Writer) http.Handler {
	return &sink{cfg: cfg.withDefaults(), out: out, counts: map[string]int{}, keys: map[string]*keyOrder{}}
}

// Received is how many requests came with webhook-id id.
func (s *sink) Received(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[id]
}

// Total is how many requests came in all.
func (s *sink) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		sinkAnswer(w, http.StatusMethodNotAllowed, "method: the sink takes POST only")
		return
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, SinkMaxBody))
	now := s.cfg.Now()
	id := r.Header.Get(webhook.HeaderID)

	s.mu.Lock()
	s.counts[id]++
	s.total++
	attempt := s.counts[id]
	s.mu.Unlock()

	sig := "unchecked"
	if len(s.cfg.Keys) > 0 && readErr == nil {
		sig = "valid"
		if err := webhook.VerifyRequest(r.Header, body, now, webhook.DefaultTolerance, s.cfg.Keys...); err != nil {
			sig = "invalid"
		}
	}
	var ev struct {
		Type        string `json:"type"`
		OrderingKey string `json:"ordering_key"`
		Data        struct {
			Seq *float64 `json:"seq"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	check := s.cfg.CheckOrder && ev.OrderingKey != ""
	if check {
		s.orderBegin(now, id, ev.OrderingKey, ev.Data.Seq)
	}

	code, msg := s.decide(readErr, sig, attempt)
	if s.cfg.Delay > 0 {
		t := time.NewTimer(s.cfg.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			if check {
				s.orderEnd(ev.OrderingKey, ev.Data.Seq, false)
			}
			s.printLine(now, id, ev.Type, attempt, sig, statusClientGone)
			return
		}
	}
	if check {
		// Before the answer: the key's next request may come right after it.
		s.orderEnd(ev.OrderingKey, ev.Data.Seq, code < 300)
	}
	if code >= 300 && s.cfg.RetryAfter > 0 && code != http.StatusUnauthorized && code != http.StatusRequestEntityTooLarge && code != http.StatusBadRequest {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.RetryAfter.Seconds()))))
	}
	// The line is printed before the answer, so that whoever got the answer
	// can rely on the line being there.
	s.printLine(now, id, ev.Type, attempt, sig, code)
	sinkAnswer(w, code, msg)
}

// orderBegin checks a request of key against the requests before it.
func (s *sink) orderBegin(at time.Time, id, key string, seq *float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		k = &keyOrder{}
		s.keys[key] = k
	}
	var problems []string
	if k.inFlight > 0 {
		problems = append(problems, "sent while an earlier request of the key was in flight")
	}
	k.inFlight++
	if seq != nil && k.seen {
		switch {
		case *seq < k.last:
			problems = append(problems, fmt.Sprintf("seq %g after seq %g was delivered (went back)", *seq, k.last))
		case *seq > k.last+1:
			problems = append(problems, fmt.Sprintf("seq %g before seq %g was delivered (skipped)", *seq, k.last+1))
		}
	}
	for _, p := range problems {
		s.violations++
		_, _ = fmt.Fprintf(s.out, "%s ORDER VIOLATION key=%s id=%s: %s\n", at.UTC().Format(lineTime), lineValue(key), lineValue(id), p)
	}
}

// orderEnd ends a request of key; a delivered one moves the key's seq on.
func (s *sink) orderEnd(key string, seq *float64, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	k.inFlight--
	if delivered && seq != nil && (!k.seen || *seq > k.last) {
		k.last, k.seen = *seq, true
	}
}

// Violations is how many order violations the check found.
func (s *sink) Violations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.violations
}

// decide applies the rules in order: a body that could not be read, an
// invalid signature, --fail-first, --fail-rate, then --status.
func (s *sink) decide(readErr error, sig string, attempt int) (int, string) {
	failCode := http.StatusInternalServerError
	if s.cfg.RetryAfter > 0 {
		failCode = http.StatusServiceUnavailable
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(readErr, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than %d bytes", SinkMaxBody)
	case readErr != nil:
		return http.StatusBadRequest, "body: " + readErr.Error()
	case sig == "invalid" && !s.cfg.NoVerify:
		return http.StatusUnauthorized, "webhook-signature: not valid for any configured secret"
	case attempt <= s.cfg.FailFirst:
		return failCode, fmt.Sprintf("simulated failure: attempt %d of the first %d", attempt, s.cfg.FailFirst)
	case s.cfg.FailRate > 0 && s.cfg.Rand() < s.cfg.FailRate:
		return failCode, fmt.Sprintf("simulated failure: --fail-rate %g", s.cfg.FailRate)
	}
	return s.cfg.Status, ""
}

func (s *sink) printLine(at time.Time, id, typ string, attempt int, sig string, code int) {
	line := fmt.Sprintf("%s id=%s type=%s attempt=%d signature=%s status=%d\n",
		at.UTC().Format(lineTime), lineValue(id), lineValue(typ), attempt, sig, code)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.out, line)
}

// lineTime is RFC 3339 with milliseconds, so that lines of one second keep
// their order for a reader.
const lineTime = "2006-01-02T15:04:05.000Z07:00"

// lineValue keeps a sender-chosen value to one field of one line: "-" when
// empty, quoted when it holds spaces or anything unprintable.
func lineValue(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == 0x7f || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func sinkAnswer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if msg == "" {
		_, _ = io.WriteString(w, "{\"ok\":true}\n")
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// sink: hookstream sink --listen ADDR --secret whsec_… [--no-verify] [--fail-first N]
// [--status CODE] [--delay D] [--retry-after D] [--fail-rate P]
func (c *cli) sink(ctx context.Context, args []string) error {
	fs := newFlagSet("sink", c.stderr)
	listen := fs.String("listen", SinkListenDefault, "address to listen on")
	var secrets listFlag
	fs.Var(&secrets, "secret", "endpoint secret whsec_… to verify with (repeatable or comma-separated; required unless --no-verify)")
	setEnvTwin(fs, "secret", envSinkSecret)
	noVerify := fs.Bool("no-verify", false, "answer whatever the signature (still checked and printed when --secret is given)")
	failFirst := fs.Int("fail-first", 0, "answer 500 to the first N attempts of each webhook-id")
	status := fs.Int("status", SinkStatusDefault, "status answered to every request no other rule fails")
	delay := fs.Duration("delay", 0, "wait this long before answering (a sender that gives up first is printed as status=499)")
	retryAfter := fs.Duration("retry-after", 0, "add Retry-After: <seconds> to failure answers, and make simulated failures 503")
	failRate := fs.Float64("fail-rate", 0, "fail this fraction of requests (0 to 1) at random with 500")
	checkOrder := fs.Bool("check-order", false, "per ordering_key, print a line for each request that overlaps another of its key, or whose data.seq goes back or skips one")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg := sinkConfig{
		NoVerify:   *noVerify,
		FailFirst:  *failFirst,
		Status:     *status,
		Delay:      *delay,
		RetryAfter: *retryAfter,
		FailRate:   *failRate,
		CheckOrder: *checkOrder,
		Now:        c.now,
	}
	for i, s := range secrets {
		key, err := webhook.ParseSecret(s)
		if err != nil {
			return usageErrorf("--secret #%d: %v", i+1, err)
		}
		cfg.Keys = append(cfg.Keys, key)
	}
	if err := cfg.validate(); err != nil {
		return &usageError{msg: "sink: " + err.Error()}
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	fmt.Fprintf(c.stdout, "listening on http://%s\n", ln.Addr())

	// Cancelling base ends every --delay in flight, so exit is prompt.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           newSink(cfg, c.stdout),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          log.New(c.stderr, "sink: ", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("sink: %w", err)
	case <-ctx.Done():
	}
	cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), SinkShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-served
	return nil
}
