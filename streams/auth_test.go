package streams_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/hookstream/hookstream/streams"
)

const (
	testPassword = "correct-horse-battery-staple"
	testToken    = "a-token-long-enough-to-guess-at"
)

// startAuthServer starts the embedded server listening on loopback with
// auth and tls, shut down when the test ends.
func startAuthServer(t *testing.T, auth streams.ServerAuth, tls streams.ServerTLS) *streams.Server {
	t.Helper()
	srv, err := streams.StartServer(streams.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Auth: auth, TLS: tls})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// dial connects as a plain client of the listener would, with opts.
func dial(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(0), nats.Timeout(5 * time.Second)}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// jsWorks checks the connection reaches JetStream: what a client with the
// right credentials may do, and one without them must not.
func jsWorks(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream through the authenticated connection: %v", err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Beyond loopback, the embedded server is never exposed without
// credentials: a plain client would read every endpoint's secret.
func TestStartServerRefusesUnprotectedListen(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"0.0.0.0:-1", ":-1", "[::]:-1", "192.0.2.1:4222", "nats.example:4222"} {
		srv, err := streams.StartServer(streams.ServerConfig{StoreDir: t.TempDir(), Listen: listen})
		if err == nil {
			_ = srv.Shutdown(context.Background())
			t.Errorf("Listen %s without auth: started, want a refusal", listen)
			continue
		}
		if !errors.Is(err, streams.ErrUnprotectedListen) || !strings.Contains(err.Error(), "--nats-user") {
			t.Errorf("Listen %s: %v, want ErrUnprotectedListen naming the flags", listen, err)
		}
	}
	for _, listen := range []string{"", "127.0.0.1:4222", "[::1]:4222", "localhost:4222", "127.1.2.3:4222"} {
		if err := streams.CheckListen(listen, streams.ServerAuth{}); err != nil {
			t.Errorf("CheckListen(%q) without auth = %v, want nil (loopback)", listen, err)
		}
	}
	if err := streams.CheckListen("0.0.0.0:4222", streams.ServerAuth{Token: testToken}); err != nil {
		t.Errorf("CheckListen with a token = %v", err)
	}
}

func TestServerAuthValidate(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	for _, tc := range []struct {
		auth streams.ServerAuth
		want string // "" valid
	}{
		{streams.ServerAuth{User: "hs", Password: testPassword}, ""},
		{streams.ServerAuth{Token: testToken}, ""},
		{streams.ServerAuth{NKeys: []string{pub}}, ""},
		{streams.ServerAuth{User: "hs", Password: testPassword, NKeys: []string{pub}}, ""},
		{streams.ServerAuth{User: "hs"}, "give both"},
		{streams.ServerAuth{Password: testPassword}, "give both"},
		{streams.ServerAuth{User: "hs", Password: "short"}, "nats-password: 5 characters; at least 16"},
		{streams.ServerAuth{Token: "short"}, "nats-token: 5 characters"},
		{streams.ServerAuth{Token: testToken, User: "hs", Password: testPassword}, "nats-token: "},
		{streams.ServerAuth{NKeys: []string{"SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"}}, "not a public user nkey"},
	} {
		err := tc.auth.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%s) = %v, want %q", tc.auth.Mode(), err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testToken)) {
			t.Errorf("Validate error %q shows the credential", err)
		}
	}
}

// Each kind of credential: a client without it is refused, one with it
// reaches JetStream (by hand and through DialConfig), and the in-process
// connection works without any.
func TestEmbeddedServerAuth(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := writeFile(t, "user.nk", string(seed)+"\n")

	for _, tc := range []struct {
		name  string
		auth  streams.ServerAuth
		right streams.DialConfig
		wrong []nats.Option
	}{
		{
			name: "user and password", auth: streams.ServerAuth{User: "hookstream", Password: testPassword},
			right: streams.DialConfig{User: "hookstream", Password: testPassword},
			wrong: []nats.Option{nats.UserInfo("hookstream", testPassword+"x")},
		},
		{
			name: "token", auth: streams.ServerAuth{Token: testToken},
			right: streams.DialConfig{Token: testToken},
			wrong: []nats.Option{nats.Token("not-the-token-at-all")},
		},
		{
			name: "nkey", auth: streams.ServerAuth{NKeys: []string{pub}},
			right: streams.DialConfig{NKeySeedFile: seedFile},
			wrong: []nats.Option{nats.UserInfo("hookstream", testPassword)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startAuthServer(t, tc.auth, streams.ServerTLS{})
			url := srv.ClientURL()
			if _, err := dial(t, url); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("a client without credentials: %v, want an authorization violation", err)
			}
			if _, err := dial(t, url, tc.wrong...); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("a client with wrong credentials: %v, want an authorization violation", err)
			}
			dc := tc.right
			dc.URL, dc.Name = url, "test"
			nc, err := dc.Dial(nats.MaxReconnects(0))
			if err != nil {
				t.Fatalf("DialConfig with the right credentials: %v", err)
			}
			t.Cleanup(nc.Close)
			jsWorks(t, nc)

			in, err := srv.Connect("in-process")
			if err != nil {
				t.Fatalf("in-process connection: %v", err)
			}
			t.Cleanup(in.Close)
			jsWorks(t, in)
		})
	}
}

// The embedded server serves its listener over TLS, and with a CA requires
// client certificates; DialConfig's TLS options connect to it.
func TestEmbeddedServerTLS(t *testing.T) {
	t.Parallel()
	certs := makeTestCerts(t)
	auth := streams.ServerAuth{Token: testToken}
	srv := startAuthServer(t, auth, streams.ServerTLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)

	if _, err := dial(t, url, nats.Token(testToken)); err == nil {
		t.Error("connected without trusting the test CA")
	}
	if _, err := dial(t, url, nats.Token(testToken), nats.RootCAs(certs.CA)); err == nil {
		t.Error("connected without a client certificate, where the CA requires one")
	}
	nc, err := streams.DialConfig{URL: url, Name: "tls", Token: testToken, TLSCAFile: certs.CA, TLSCertFile: certs.ClientCert, TLSKeyFile: certs.ClientKey}.Dial(nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("DialConfig with TLS: %v", err)
	}
	t.Cleanup(nc.Close)
	if !strings.HasPrefix(nc.ConnectedUrl(), "tls://") {
		t.Errorf("connected to %s, want TLS", nc.ConnectedUrl())
	}
	jsWorks(t, nc)
	in, err := srv.Connect("in-process")
	if err != nil {
		t.Fatalf("in-process connection beside TLS: %v", err)
	}
	t.Cleanup(in.Close)
	jsWorks(t, in)
}

// A creds file (a user JWT and its seed) is how an operator-mode NATS
// deployment hands out credentials; DialConfig passes it on.
func TestDialConfigCredsFile(t *testing.T) {
	t.Parallel()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := writeFile(t, "user.creds", string(creds))

	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("operator-mode server not ready")
	}
	if _, err := dial(t, ns.ClientURL()); err == nil {
		t.Error("connected to an operator-mode server without credentials")
	}
	nc, err := streams.DialConfig{URL: ns.ClientURL(), Name: "creds", CredsFile: credsFile}.Dial(nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("DialConfig with a creds file: %v", err)
	}
	nc.Close()
}

func TestDialConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    streams.DialConfig
		want string
	}{
		{streams.DialConfig{Token: "t", User: "u", Password: "p"}, "give one of"},
		{streams.DialConfig{CredsFile: "c", NKeySeedFile: "n"}, "give one of"},
		{streams.DialConfig{User: "u"}, "give both"},
		{streams.DialConfig{TLSCertFile: "c"}, "nats-tls-cert and nats-tls-key"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
	pubFile := writeFile(t, "pub.nk", "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4")
	if _, err := (streams.DialConfig{URL: "nats://127.0.0.1:1", NKeySeedFile: pubFile}).Dial(); err == nil || !strings.Contains(err.Error(), "needs the seed") {
		t.Errorf("Dial with a public key file = %v, want it to ask for the seed", err)
	}
}

// A URL's credentials never reach an error.
func TestDialErrorHidesURLCredentials(t *testing.T) {
	t.Parallel()
	_, err := streams.Dial("nats://hookstream:"+testPassword+"@127.0.0.1:1,nats://tok3n-value@127.0.0.1:2", "t", nats.MaxReconnects(0), nats.Timeout(time.Second))
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "tok3n-value") || strings.Contains(err.Error(), "hookstream:") {
		t.Errorf("error %q shows a credential of the URL", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the server", err)
	}
}
