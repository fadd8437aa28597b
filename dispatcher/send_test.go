package dispatcher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// hostileEndpoint is a raw TCP endpoint that reads each request and writes
// answer, whatever HTTP says, then closes the connection.
func hostileEndpoint(t *testing.T, answer []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// Out of descriptors (TestSendOutOfFileDescriptorsIsLocal
				// runs this in the same process): back off as net/http's
				// server does, and accept again.
				time.Sleep(5 * time.Millisecond)
				continue
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				// The client hangs up once it has read enough: a write
				// error here is the point.
				_, _ = conn.Write(answer)
			})
		}
	})
	return "http://" + ln.Addr().String() + "/hook"
}

// testSender is the dispatcher's sender, as New builds it.
func testSender() *sender {
	return &sender{
		client:    netguard.NewClient(&netguard.Dialer{AllowPrivate: true}, 10, 0),
		userAgent: "hookstream/test",
		timeout:   10 * time.Second,
	}
}

// sendOnce sends one signed delivery to url.
func sendOnce(t *testing.T, s *sender, url string) result {
	t.Helper()
	d := &streams.Delivery{EndpointID: "ep", Event: streams.Event{
		ID: "evt_1", Type: "order.created", Source: "default", Time: time.Now().UTC(), Data: []byte(`{"n":1}`),
	}}
	signer := webhook.NewSigner(bytes.Repeat([]byte{7}, 32))
	return s.send(context.Background(), url, signer, d, time.Now())
}

// manyHeaders is a 200 with 400,000 headers: about 5 MB on the wire, and
// with Go's default limit of 10 MiB over 50 MiB once parsed.
func manyHeaders() []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range 400_000 {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// Whatever an endpoint answers, what the attempt keeps is bounded: headers
// are read up to 64 KiB (and such an answer is a failure, never a 2xx), the
// error text is at most 1 KiB and valid UTF-8, the body kept at most 4 KiB,
// cut on a rune boundary.
func TestSendBoundsWhatAHostileEndpointAnswers(t *testing.T) {
	t.Parallel()
	euro := strings.Repeat("€", 5<<20/3) // 3 bytes each: a byte cut at 4096 would split one
	for _, c := range []struct {
		name      string
		answer    []byte
		wantOK    bool
		wantInErr string
	}{
		{"FourHundredThousandHeaders", manyHeaders(), false, "exceeded 65536 bytes"},
		{"StatusLine300KB", []byte("HTTP/1.1 " + strings.Repeat("x", 300<<10) + "\r\n\r\n"), false, "exceeded 65536 bytes"},
		// Under the header limit, Go quotes the whole malformed line.
		{"MalformedStatus45KB", []byte("HTTP/1.1 abc" + euro[:45<<10] + "\r\n\r\n"), false, "malformed HTTP status code"},
		{"HugeBody", []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(euro), euro)), true, ""},
		{"HugeErrorBody", []byte(fmt.Sprintf("HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s", len(euro), euro)), false, "http status 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := testSender()
			defer s.client.CloseIdleConnections()
			r := sendOnce(t, s, hostileEndpoint(t, c.answer))
			text := r.errorText()
			if r.ok() != c.wantOK || !strings.Contains(text, c.wantInErr) {
				t.Fatalf("ok %v, error %.300q; want ok %v and an error saying %q", r.ok(), text, c.wantOK, c.wantInErr)
			}
			if len(text) > AttemptErrorLimit || !utf8.ValidString(text) {
				t.Errorf("error text is %d bytes (valid UTF-8: %v), want at most %d", len(text), utf8.ValidString(text), AttemptErrorLimit)
			}
			if len(r.body) > AttemptBodyLimit || !utf8.Valid(r.body) || cap(r.body) > AttemptBodyLimit {
				t.Errorf("body kept: %d bytes (capacity %d, valid UTF-8: %v), want at most %d", len(r.body), cap(r.body), utf8.Valid(r.body), AttemptBodyLimit)
			}
			if r.local() {
				t.Error("the endpoint's answer counted as a failure of ours")
			}
		})
	}
}

// 400,000 headers cost one bounded read, not their parse: the memory one
// such attempt allocates stays under a few MiB (it was 57 MiB).
func TestSendHostileHeadersAllocateLittle(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	url := hostileEndpoint(t, manyHeaders())
	s := testSender()
	defer s.client.CloseIdleConnections()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := sendOnce(t, s, url)
	runtime.ReadMemStats(&after)
	if r.ok() {
		t.Fatal("400,000 headers were read as a 2xx")
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("one attempt allocated %d KiB", got>>10)
	if got > 8<<20 {
		t.Fatalf("one attempt allocated %d MiB, want under 8", got>>20)
	}
}

// Error texts never show the credentials of an endpoint URL: user name,
// password and query values are hidden, in attempts, dead letters and logs.
func TestSendErrorHidesURLCredentials(t *testing.T) {
	t.Parallel()
	hook := hostileEndpoint(t, []byte("HTTP/1.1 abc\r\n\r\n"))
	u, err := url.Parse(hook)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("alice", "hunter2")
	u.RawQuery = "token=s3cret&v=2"
	s := testSender()
	defer s.client.CloseIdleConnections()
	text := sendOnce(t, s, u.String()).errorText()
	if !strings.Contains(text, "malformed HTTP status code") || !strings.Contains(text, "token=***") {
		t.Fatalf("error = %q, want the malformed status with the URL redacted", text)
	}
	for _, secret := range []string{"alice", "hunter2", "s3cret"} {
		if strings.Contains(text, secret) {
			t.Errorf("error %q shows %q", text, secret)
		}
	}
}

func TestSendLocalFailures(t *testing.T) {
	t.Parallel()
	dialErr := func(errno syscall.Errno) error {
		return &url.Error{Op: "Post", URL: "http://example.com/hook", Err: &net.OpError{
			Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", errno),
		}}
	}
	for _, c := range []struct {
		name string
		r    result
		want bool
	}{
		{"OutOfFileDescriptors", result{err: dialErr(syscall.EMFILE)}, true},
		{"SystemOutOfFileDescriptors", result{err: dialErr(syscall.ENFILE)}, true},
		{"OutOfPorts", result{err: dialErr(syscall.EADDRNOTAVAIL)}, true},
		{"ResolverOutOfFileDescriptors", result{err: &url.Error{Op: "Post", URL: "http://example.com/", Err: &net.OpError{
			Op: "dial", Err: &net.DNSError{Err: "dial udp 10.0.0.53:53: socket: " + syscall.EMFILE.Error(), Name: "example.com"},
		}}}, true},
		{"RequestNotBuilt", result{err: errors.New("request: bad url"), ours: true}, true},
		{"Refused", result{err: dialErr(syscall.ECONNREFUSED)}, false},
		{"Reset", result{err: dialErr(syscall.ECONNRESET)}, false},
		{"Timeout", result{err: errors.New("timeout after 10s")}, false},
		{"NotFound", result{err: &url.Error{Op: "Post", URL: "http://nx.example/", Err: &net.DNSError{Err: "no such host", Name: "nx.example", IsNotFound: true}}}, false},
		{"Status500", result{status: 500}, false},
		{"Delivered", result{status: 200}, false},
	} {
		if got := c.r.local(); got != c.want {
			t.Errorf("%s: local() = %v, want %v", c.name, got, c.want)
		}
	}
}

// emfileChild is set in the child process of
// TestSendOutOfFileDescriptorsIsLocal.
const emfileChild = "HOOKSTREAM_TEST_EMFILE_CHILD"

// A real attempt made while the process has no file descriptor left fails
// as ours (local), not the endpoint's. The descriptors are exhausted in a
// child process, so that no other test runs short of them.
func TestSendOutOfFileDescriptorsIsLocal(t *testing.T) {
	if os.Getenv(emfileChild) == "" {
		t.Parallel()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSendOutOfFileDescriptorsIsLocal$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), emfileChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestSendOutOfFileDescriptorsIsLocal")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	hook := hostileEndpoint(t, []byte("HTTP/1.1 204 No Content\r\n\r\n"))
	s := testSender()
	defer s.client.CloseIdleConnections()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 128
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	r := sendOnce(t, s, hook)
	release()
	if r.ok() || !errors.Is(r.err, syscall.EMFILE) || !r.local() {
		t.Fatalf("attempt without descriptors: ok %v, err %v, local %v; want a local EMFILE failure", r.ok(), r.err, r.local())
	}
	if r = sendOnce(t, s, hook); !r.ok() {
		t.Fatalf("attempt with descriptors again: %v", r.errorText())
	}
}
