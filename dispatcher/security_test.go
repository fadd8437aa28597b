package dispatcher_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// secResolver is a DNS under the test's control: each host answers with the
// next of its answers, lookup after lookup (the last one repeated), so a
// host can rebind between lookups. Every lookup is counted.
type secResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups map[string]int
}

func newSecResolver() *secResolver {
	return &secResolver{answers: map[string][][]netip.Addr{}, lookups: map[string]int{}}
}

// set makes host answer answers[0] at its first lookup, answers[1] at its
// second, and so on.
func (r *secResolver) set(host string, answers ...[]netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[host] = answers
}

func (r *secResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.lookups[host]
	r.lookups[host]++
	ips := seq[min(n, len(seq)-1)]
	// Honour the network asked for, as a real resolver does.
	var out []netip.Addr
	for _, ip := range ips {
		if network == "ip" || (network == "ip4") == ip.Unmap().Is4() {
			out = append(out, ip)
		}
	}
	return out, nil
}

func (r *secResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[host]
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// secConfig is fastConfig refusing private addresses, with a resolver, and
// a retry schedule slow enough that each case makes a handful of attempts.
func secConfig(res netguard.Resolver) dispatcher.Config {
	cfg := fastConfig()
	cfg.AllowPrivate = false
	cfg.Resolver = res
	cfg.RetryInitial = 50 * time.Millisecond
	cfg.RetryMaxInterval = 200 * time.Millisecond
	// Long enough that no delivery reaches its deadline (and is
	// dead-lettered, its state purged) while a slow machine still checks
	// the cases one after the other.
	cfg.RetryMaxAge = 5 * time.Minute
	return cfg
}

// receiverPort is the port of r's test server, on 127.0.0.1.
func receiverPort(t *testing.T, r *receiver) string {
	t.Helper()
	u, err := url.Parse(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// attempts reads an endpoint's attempt log (the ATTEMPTS stream).
// attempts is the endpoint's attempt log, oldest first, batches unpacked.
func (b *bundle) attempts(endpointID string) []streams.Attempt {
	b.t.Helper()
	ctx := context.Background()
	s, err := b.env.JS.Stream(ctx, streams.StreamAttempts)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []streams.Attempt
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(streams.AttemptSubject(endpointID)))
		if err != nil {
			return out
		}
		as, err := streams.DecodeAttempts(raw.Data)
		if err != nil {
			b.t.Fatal(err)
		}
		out = append(out, as...)
		seq = raw.Sequence + 1
	}
}

func (b *bundle) deliveryState(eventID, endpointID string) *streams.DeliveryState {
	b.t.Helper()
	st, _, _, err := streams.Get[streams.DeliveryState](context.Background(), b.kv(streams.BucketDeliveryState), streams.DeliveryKey(eventID, endpointID))
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

// Every refused address class, whether the endpoint's host name resolves to
// it (checked at dial time, after DNS) or the URL holds it as a literal
// (stored while --allow-private-endpoints was on, say), is refused at dial:
// nothing reaches the receiver listening on 127.0.0.1, and the attempt is
// recorded (Observer, attempt log, delivery state) with an error that says
// the address is not allowed and why.
func TestSSRFRefusedAtDial(t *testing.T) {
	t.Parallel()
	res := newSecResolver()
	b := setup(t, secConfig(res))
	recv := newReceiver(t)
	port := receiverPort(t, recv)

	type refusal struct {
		name  string
		ips   []string // what the host name resolves to; nil: the URL is the IP literal lit
		lit   string
		class string // the class the error must name
		addr  string // and the address
	}
	cases := []refusal{
		// The receiver's own address: a dial that got through would arrive.
		{name: "loopback", ips: []string{"127.0.0.1"}, class: "loopback", addr: "127.0.0.1"},
		{name: "loopback_v6", ips: []string{"::1"}, class: "loopback", addr: "::1"},
		{name: "loopback_mapped", ips: []string{"::ffff:127.0.0.1"}, class: "loopback", addr: "::ffff:127.0.0.1"},
		{name: "private_10", ips: []string{"10.0.0.1"}, class: "private", addr: "10.0.0.1"},
		{name: "private_172", ips: []string{"172.16.0.1"}, class: "private", addr: "172.16.0.1"},
		{name: "private_192", ips: []string{"192.168.1.1"}, class: "private", addr: "192.168.1.1"},
		{name: "private_mapped", ips: []string{"::ffff:10.0.0.1"}, class: "private", addr: "::ffff:10.0.0.1"},
		{name: "private_ula", ips: []string{"fd00::1"}, class: "private", addr: "fd00::1"},
		{name: "private_nat64", ips: []string{"64:ff9b::a00:1"}, class: "private", addr: "64:ff9b::a00:1"},
		{name: "metadata", ips: []string{"169.254.169.254"}, class: "cloud-metadata", addr: "169.254.169.254"},
		{name: "metadata_v6", ips: []string{"fd00:ec2::254"}, class: "cloud-metadata", addr: "fd00:ec2::254"},
		{name: "link_local", ips: []string{"169.254.1.1"}, class: "link-local", addr: "169.254.1.1"},
		{name: "link_local_v6", ips: []string{"fe80::1"}, class: "link-local", addr: "fe80::1"},
		{name: "cgnat", ips: []string{"100.64.0.1"}, class: "cgnat", addr: "100.64.0.1"},
		{name: "multicast", ips: []string{"224.0.0.1"}, class: "multicast", addr: "224.0.0.1"},
		{name: "multicast_v6", ips: []string{"ff02::1"}, class: "multicast", addr: "ff02::1"},
		{name: "unspecified", ips: []string{"0.0.0.0"}, class: "unspecified", addr: "0.0.0.0"},
		{name: "unspecified_v6", ips: []string{"::"}, class: "unspecified", addr: "::"},
		// Every answer refused: the error names the first.
		{name: "all_refused", ips: []string{"10.1.2.3", "127.0.0.1", "::1"}, class: "private", addr: "10.1.2.3"},
		// IP literals stored in the endpoint: no lookup, refused all the same.
		{name: "literal_loopback", lit: "127.0.0.1", class: "loopback", addr: "127.0.0.1"},
		{name: "literal_loopback_v6", lit: "[::1]", class: "loopback", addr: "::1"},
		{name: "literal_metadata", lit: "169.254.169.254", class: "cloud-metadata", addr: "169.254.169.254"},
	}
	host := func(c refusal) string {
		if c.lit != "" {
			return c.lit
		}
		return strings.ReplaceAll(c.name, "_", "-") + ".hooks.example.com"
	}
	for _, c := range cases {
		if c.ips != nil {
			res.set(host(c), addrs(c.ips...))
		}
		u := "http://" + host(c) + ":" + port + "/hook"
		if c.lit == "" {
			// The create-time check lets a host name through: it is checked
			// when dialled.
			if err := netguard.CheckURL(u, false); err != nil {
				t.Fatalf("%s: CheckURL(%s) = %v, want nil for a host name", c.name, u, err)
			}
		}
		b.addEndpoint("ssrf_"+c.name, u, "ssrf."+c.name)
	}
	for _, c := range cases {
		b.publish("ev-"+c.name, "ssrf."+c.name)
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			epID, evID := "ssrf_"+c.name, "ev-"+c.name
			var outs []dispatcher.Outcome
			waitFor(t, c.name+"'s first attempts", func() bool {
				outs = b.outcomesFor(evID)
				return len(outs) >= 2
			})
			var wantErr string
			if c.lit == "" {
				wantErr = "address not allowed: host " + host(c) + " resolves to " + c.class + " address " + c.addr
			} else {
				wantErr = "address not allowed: " + c.class + " address " + c.addr
			}
			for _, o := range outs {
				if o.Delivered || o.StatusCode != 0 {
					t.Errorf("attempt %d: delivered=%v status=%d, want a refusal", o.Attempt, o.Delivered, o.StatusCode)
				}
				if !strings.Contains(o.Err, wantErr) {
					t.Errorf("attempt %d: error %q, want it to contain %q", o.Attempt, o.Err, wantErr)
				}
				if o.RetryIn <= 0 {
					t.Errorf("attempt %d: no retry scheduled; a refusal is retried like any failure", o.Attempt)
				}
			}
			if c.lit == "" {
				// Resolved at every dial, not once and cached.
				if n := res.count(host(c)); n < len(outs) {
					t.Errorf("%d lookups of %s for %d attempts, want one per attempt", n, host(c), len(outs))
				}
			}
			waitFor(t, c.name+"'s attempt log", func() bool { return len(b.attempts(epID)) >= 1 })
			for _, a := range b.attempts(epID) {
				if a.EventID != evID || a.StatusCode != 0 || !strings.Contains(a.Error, wantErr) {
					t.Errorf("attempt log: %+v, want event %s refused with %q", a, evID, wantErr)
				}
			}
			st := b.deliveryState(evID, epID)
			if st == nil || st.State != streams.DeliveryRetrying || !strings.Contains(st.LastError, wantErr) {
				t.Errorf("delivery state %+v, want retrying with last error %q", st, wantErr)
			}
		})
	}
	if n := recv.total(); n != 0 {
		t.Errorf("the receiver on 127.0.0.1 got %d requests; every dial should have been refused", n)
	}
}

// A host name that rebinds between lookups (one answer at the create-time
// check, if any were made, another at each dial) is checked anew at every
// dial, on the address actually dialled: whatever internal address it
// turns to, nothing gets through, and each attempt's error names the
// address that attempt's lookup returned.
func TestSSRFRebindingHostRefusedAtEveryDial(t *testing.T) {
	t.Parallel()
	res := newSecResolver()
	b := setup(t, secConfig(res))
	recv := newReceiver(t)
	const host = "rebind.hooks.example.com"
	u := "http://" + host + ":" + receiverPort(t, recv) + "/hook"
	if err := netguard.CheckURL(u, false); err != nil {
		t.Fatalf("CheckURL = %v; a host name passes at create time", err)
	}
	// A different internal address at each lookup, the receiver's own
	// address among them.
	answers := []string{"10.0.0.1", "127.0.0.1", "169.254.169.254", "::1", "100.64.0.1", "::ffff:127.0.0.1"}
	seq := make([][]netip.Addr, len(answers))
	for i, a := range answers {
		seq[i] = addrs(a)
	}
	res.set(host, seq...)
	b.addEndpoint("rebind", u, "rebind.test")
	b.publish("ev-rebind", "rebind.test")

	var outs []dispatcher.Outcome
	waitFor(t, "four attempts", func() bool {
		outs = b.outcomesFor("ev-rebind")
		return len(outs) >= 4
	})
	named := map[string]bool{}
	for _, o := range outs {
		found := ""
		for _, a := range answers {
			if strings.HasSuffix(o.Err, " address "+a) {
				found = a
			}
		}
		if o.Delivered || found == "" || !strings.Contains(o.Err, "address not allowed: host "+host+" resolves to ") {
			t.Errorf("attempt %d: %q, want a refusal naming one of the rebound addresses", o.Attempt, o.Err)
			continue
		}
		named[found] = true
	}
	// Each attempt looked the host up again and refused what it got.
	if len(named) < 3 {
		t.Errorf("attempts named %v; want the address of each attempt's own lookup (3 or more different ones)", named)
	}
	if n := recv.total(); n != 0 {
		t.Errorf("the receiver got %d requests through a rebinding host", n)
	}
}

// With AllowPrivate (--allow-private-endpoints), the same resolver's
// loopback answer is dialled and the delivery arrives: the refusals above
// are the guard's doing, not a broken test resolver.
func TestSSRFAllowPrivateDelivers(t *testing.T) {
	t.Parallel()
	res := newSecResolver()
	cfg := secConfig(res)
	cfg.AllowPrivate = true
	b := setup(t, cfg)
	recv := newReceiver(t)
	const host = "allowed.hooks.example.com"
	res.set(host, addrs("127.0.0.1"))
	b.addEndpoint("allowed", "http://"+host+":"+receiverPort(t, recv)+"/hook", "allowed.test")
	b.publish("ev-allowed", "allowed.test")
	waitFor(t, "the delivery", func() bool { return recv.count("ev-allowed") == 1 })
	if res.count(host) == 0 {
		t.Error("the injected resolver was not used")
	}
}

// secClock is a settable dispatcher clock.
type secClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *secClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *secClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// signedRequest is one webhook as received.
type signedRequest struct {
	header http.Header
	body   []byte
}

// captureServer records every webhook by its webhook-id.
type captureServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]signedRequest
}

func newCaptureServer(t *testing.T) *captureServer {
	c := &captureServer{got: map[string][]signedRequest{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		id := r.Header.Get(webhook.HeaderID)
		c.got[id] = append(c.got[id], signedRequest{header: r.Header.Clone(), body: body})
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *captureServer) first(id string) (signedRequest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got[id]) == 0 {
		return signedRequest{}, false
	}
	return c.got[id][0], true
}

// During a rotation's overlap every webhook carries two "v1," signatures,
// the new key's and the old key's, and a receiver holding either key alone
// accepts it; once the old secret's expiry passes (by the dispatcher's
// clock), only the new key signs.
func TestSecretRotationOverlap(t *testing.T) {
	t.Parallel()
	start := time.Now().UTC().Truncate(time.Second)
	clk := &secClock{t: start}
	cfg := fastConfig()
	cfg.Now = clk.Now
	// The clock moves a day ahead: the give-up age must outlast it, or the
	// deliveries would expire unsent.
	cfg.RetryMaxAge = 72 * time.Hour
	b := setup(t, cfg)
	capt := newCaptureServer(t)

	oldSecret, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	newSecret, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := webhook.ParseSecret(oldSecret)
	newKey, _ := webhook.ParseSecret(newSecret)
	expires := start.Add(24 * time.Hour) // the default --secret-overlap
	ctx := context.Background()
	const id = "rotating"
	if _, err := streams.Put(ctx, b.kv(streams.BucketHealth), id, streams.NewHealth(id, start)); err != nil {
		t.Fatal(err)
	}
	ep := &streams.Endpoint{
		ID: id, URL: capt.srv.URL + "/hook", EventTypes: []string{"rotation.test"},
		// As rotate-secret leaves them: the new key first, the old one with
		// its expiry.
		Secrets: []streams.Secret{
			{Key: newSecret, CreatedAt: start},
			{Key: oldSecret, CreatedAt: start.Add(-30 * 24 * time.Hour), ExpiresAt: expires},
		},
		CreatedAt: start, UpdatedAt: start,
	}
	if _, err := streams.Put(ctx, b.kv(streams.BucketEndpoints), id, ep); err != nil {
		t.Fatal(err)
	}

	// deliver publishes an event at the clock's time now and returns the
	// webhook that arrived, with the verification time (the dispatcher's
	// clock, which also set webhook-timestamp).
	deliver := func(evID string, now time.Time) (signedRequest, time.Time) {
		t.Helper()
		clk.Set(now)
		b.publish(evID, "rotation.test")
		var req signedRequest
		waitFor(t, evID+" to arrive", func() bool {
			var ok bool
			req, ok = capt.first(evID)
			return ok
		})
		return req, now
	}
	entries := func(req signedRequest) []string {
		return strings.Fields(req.header.Get(webhook.HeaderSignature))
	}
	verify := func(req signedRequest, now time.Time, keys ...[]byte) error {
		return webhook.VerifyRequest(req.header, req.body, now, webhook.DefaultTolerance, keys...)
	}

	for _, phase := range []struct {
		name string
		at   time.Time
	}{
		{"just-rotated", start},
		{"just-before-expiry", expires.Add(-time.Second)},
	} {
		req, now := deliver("ev-"+phase.name, phase.at)
		sigs := entries(req)
		if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
			t.Fatalf("%s: webhook-signature %q, want two v1 entries", phase.name, req.header.Get(webhook.HeaderSignature))
		}
		if err := verify(req, now, oldKey); err != nil {
			t.Errorf("%s: a receiver with only the old key refuses the webhook: %v", phase.name, err)
		}
		if err := verify(req, now, newKey); err != nil {
			t.Errorf("%s: a receiver with only the new key refuses the webhook: %v", phase.name, err)
		}
		// One entry per key, each the signature of exactly one of them.
		for i, key := range [][]byte{newKey, oldKey} {
			h := req.header.Clone()
			h.Set(webhook.HeaderSignature, sigs[i])
			if err := webhook.VerifyRequest(h, req.body, now, webhook.DefaultTolerance, key); err != nil {
				t.Errorf("%s: entry %d does not verify with its key: %v", phase.name, i, err)
			}
			other := [][]byte{oldKey, newKey}[i]
			if err := webhook.VerifyRequest(h, req.body, now, webhook.DefaultTolerance, other); err == nil {
				t.Errorf("%s: entry %d verifies with the other key too", phase.name, i)
			}
		}
	}

	for _, phase := range []struct {
		name string
		at   time.Time
	}{
		{"at-expiry", expires},
		{"after-overlap", expires.Add(time.Hour)},
	} {
		req, now := deliver("ev-"+phase.name, phase.at)
		if sigs := entries(req); len(sigs) != 1 || !strings.HasPrefix(sigs[0], "v1,") {
			t.Errorf("%s: webhook-signature %q, want the new key's entry alone", phase.name, req.header.Get(webhook.HeaderSignature))
		}
		if err := verify(req, now, oldKey); !errors.Is(err, webhook.ErrNoValidSignature) {
			t.Errorf("%s: verifying with the expired key = %v, want ErrNoValidSignature", phase.name, err)
		}
		if err := verify(req, now, newKey); err != nil {
			t.Errorf("%s: verifying with the new key = %v", phase.name, err)
		}
		if ts := req.header.Get(webhook.HeaderTimestamp); ts != strconv.FormatInt(now.Unix(), 10) {
			t.Errorf("%s: webhook-timestamp %s, want the dispatcher clock's %s", phase.name, ts, strconv.FormatInt(now.Unix(), 10))
		}
	}
}
