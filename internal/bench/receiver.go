package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Counter counts the webhooks a set of receivers got, duplicates included
// (a delivery sent twice is two deliveries), and the publish-to-receipt
// latency of those whose body carries a send time (see EventData). It is
// safe for concurrent use.
type Counter struct {
	n atomic.Int64

	mu      sync.Mutex
	want    int64
	reached chan struct{}
	record  bool
	lat     []time.Duration
}

// Count is how many webhooks arrived since the last Reset.
func (c *Counter) Count() int64 { return c.n.Load() }

// Reset sets the count to zero and stops and forgets any recording.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n.Store(0)
	c.want, c.reached, c.record, c.lat = 0, nil, false, nil
}

// Expect returns a channel closed once n webhooks arrived since the last
// Reset.
func (c *Counter) Expect(n int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.reached = n, make(chan struct{})
	if c.n.Load() >= n {
		close(c.reached)
	}
	return c.reached
}

// Record starts keeping the latency of every webhook that carries a send
// time, room made for about n of them.
func (c *Counter) Record(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record, c.lat = true, make([]time.Duration, 0, n)
}

// Latencies returns the latencies recorded since Record.
func (c *Counter) Latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.lat...)
}

func (c *Counter) add(body []byte, at time.Time) {
	v := c.n.Add(1)
	c.mu.Lock()
	if c.record {
		if sent, ok := SentTime(body); ok {
			c.lat = append(c.lat, at.Sub(sent))
		}
	}
	if c.reached != nil && v >= c.want {
		select {
		case <-c.reached:
		default:
			close(c.reached)
		}
	}
	c.mu.Unlock()
}

// Receiver is a webhook endpoint as a Go receiver would be: net/http with
// keep-alive, every body read to its end, answered at once.
type Receiver struct {
	// URL is where it listens, http://host:port/hook.
	URL string

	counter *Counter
	status  atomic.Int32
	srv     *http.Server
	done    chan struct{}
}

// bodyPool keeps the receivers' body buffers, so that receiving costs the
// measured pipeline as little CPU as a lean receiver's would.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// NewReceiver listens on listen ("127.0.0.1:0" picks a port) and counts
// what arrives into c. It answers 204 until SetStatus says otherwise.
func NewReceiver(listen string, c *Counter) (*Receiver, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + ln.Addr().String() + "/hook", counter: c, done: make(chan struct{})}
	r.status.Store(http.StatusNoContent)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// SetStatus makes the receiver answer code from now on (a 503 makes it a
// dead endpoint).
func (r *Receiver) SetStatus(code int) { r.status.Store(int32(code)) }

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(req.Body, 10<<20))
	at := time.Now()
	if err == nil {
		r.counter.add(buf.Bytes(), at)
	}
	bodyPool.Put(buf)
	w.WriteHeader(int(r.status.Load()))
}

// Close stops the receiver and its connections.
func (r *Receiver) Close() error {
	err := r.srv.Close()
	<-r.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Receivers are n receivers counting into one Counter: the endpoints of a
// fan-out, each on its own port as distinct hosts would be.
type Receivers struct {
	Counter *Counter
	List    []*Receiver
}

// NewReceivers starts n receivers. listen is "host:port": with port 0 each
// picks its own; with a port P, receiver i listens on P+i (so that a
// firewall can be opened for a known range).
func NewReceivers(listen string, n int) (*Receivers, error) {
	host, port, err := splitPort(listen)
	if err != nil {
		return nil, err
	}
	rs := &Receivers{Counter: &Counter{}}
	for i := range n {
		addr := net.JoinHostPort(host, "0")
		if port > 0 {
			addr = net.JoinHostPort(host, itoa(port+i))
		}
		r, err := NewReceiver(addr, rs.Counter)
		if err != nil {
			_ = rs.Close()
			return nil, err
		}
		rs.List = append(rs.List, r)
	}
	return rs, nil
}

// SetStatus sets every receiver's answer.
func (rs *Receivers) SetStatus(code int) {
	for _, r := range rs.List {
		r.SetStatus(code)
	}
}

// Close stops every receiver.
func (rs *Receivers) Close() error {
	var errs []error
	for _, r := range rs.List {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// wait waits for ch or ctx, whichever comes first.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
