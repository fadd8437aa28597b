package api

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// connLimiter is a listener that holds at most max client connections open.
// At the limit it first closes the connection that has been idle (a
// keep-alive connection between requests) the longest, so that idle clients
// can never lock out a new one: /healthz and the API keep answering however
// many connections are parked. When none is idle, Accept waits for one to
// close; the read and write timeouts bound how long that can take.
//
// Running out of file descriptors (EMFILE) is treated the same way: an idle
// connection is closed and the error returned, for http.Server to retry the
// accept after its back-off.
type connLimiter struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close
	// turnedIdle wakes an Accept waiting at the limit when a connection
	// becomes idle, so that it can close it and take its slot.
	turnedIdle chan struct{}

	mu    sync.Mutex
	idle  map[*limitedConn]time.Time // since when each idle connection is idle
	close sync.Once
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{
		Listener:   ln,
		slots:      make(chan struct{}, max),
		done:       make(chan struct{}),
		turnedIdle: make(chan struct{}, 1),
		idle:       map[*limitedConn]time.Time{},
	}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for taken := false; !taken; {
		select {
		case l.slots <- struct{}{}:
			taken = true
			continue
		default:
		}
		// Full: make room from an idle connection, or wait for a slot or
		// for a busy connection to turn idle (then make room from it).
		l.closeLongestIdle()
		select {
		case l.slots <- struct{}{}:
			taken = true
		case <-l.turnedIdle:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			l.closeLongestIdle()
		}
		return nil, err
	}
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *connLimiter) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// closeLongestIdle closes the connection idle the longest, if any is.
func (l *connLimiter) closeLongestIdle() {
	l.mu.Lock()
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		// The server sees the connection fail on its next read and forgets
		// it; the slot comes back through limitedConn.Close.
		_ = oldest.Close()
	}
}

// connState is the http.Server's ConnState hook: it keeps track of which
// connections are idle.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.idle[lc] = time.Now()
		select {
		case l.turnedIdle <- struct{}{}:
		default:
		}
		return
	}
	delete(l.idle, lc)
}

// limitedConn gives its slot back once, when it is closed, whoever closes
// it (the server, a hijacking handler or closeLongestIdle).
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
