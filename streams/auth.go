package streams

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// MinServerSecretLen is the shortest password or token the embedded server
// takes: anyone who reaches its port may guess as fast as the network lets
// them, and what a guess wins is every endpoint's signing secret.
const MinServerSecretLen = 16

// ErrUnprotectedListen is wrapped by the refusal to expose the embedded
// server beyond loopback without credentials.
var ErrUnprotectedListen = errors.New("nats-listen: beyond loopback without credentials")

// ServerAuth is what a client of the embedded server's listener must
// present. Exactly one way may be set: User and Password (and NKeys
// beside them), or Token. The zero ServerAuth lets any client in, which
// StartServer allows only on a loopback Listen.
type ServerAuth struct {
	// User and Password: a client connects with both (nats.UserInfo).
	User, Password string
	// Token: a client connects with it (nats.Token).
	Token string
	// NKeys are public user nkeys ("U…"): a client connects by signing the
	// server's nonce with the seed of one of them (nats.Nkey,
	// nats.NkeyOptionFromSeed).
	NKeys []string
}

// Enabled reports whether any credential is set.
func (a ServerAuth) Enabled() bool {
	return a.User != "" || a.Password != "" || a.Token != "" || len(a.NKeys) > 0
}

// Mode names the kinds of credential set ("user", "token", "nkey"), for
// logs; never a credential itself.
func (a ServerAuth) Mode() string {
	var m []string
	if a.User != "" {
		m = append(m, "user")
	}
	if a.Token != "" {
		m = append(m, "token")
	}
	if len(a.NKeys) > 0 {
		m = append(m, "nkey")
	}
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(m, "+")
}

// Validate checks the combination and strength of the credentials; its
// errors name the flag and never show a credential.
func (a ServerAuth) Validate() error {
	switch {
	case (a.User == "") != (a.Password == ""):
		return errors.New("nats-user and nats-password: give both or neither")
	case a.Token != "" && (a.User != "" || len(a.NKeys) > 0):
		return errors.New("nats-token: give a token, or a user and password (and nkeys), not both")
	case a.Password != "" && len(a.Password) < MinServerSecretLen:
		return fmt.Errorf("nats-password: %d characters; at least %d are required of a password anyone reaching the port may guess at", len(a.Password), MinServerSecretLen)
	case a.Token != "" && len(a.Token) < MinServerSecretLen:
		return fmt.Errorf("nats-token: %d characters; at least %d are required of a token anyone reaching the port may guess at", len(a.Token), MinServerSecretLen)
	}
	for i, k := range a.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return fmt.Errorf("nats-nkey: key %d is not a public user nkey (U…)", i+1)
		}
	}
	return nil
}

// CheckListen refuses to expose the embedded server beyond loopback without
// credentials: whoever connects to it reads every endpoint's signing secret
// and every source's credentials from the KV buckets, publishes events the
// dispatcher signs and delivers as genuine, and overwrites or deletes any
// record. An empty listen (not exposed) and a loopback one pass.
func CheckListen(listen string, auth ServerAuth) error {
	if listen == "" || auth.Enabled() {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("nats-listen: %q is not host:port: %w", listen, err)
	}
	if isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w: exposing the embedded NATS on %s requires --nats-user and --nats-password, --nats-token or --nats-nkey (whoever reaches it reads every endpoint's secret and can publish events that are delivered as genuine)", ErrUnprotectedListen, listen)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ReadNKeyFile reads a file holding an nkey: a user seed ("SU…", as `nsc`
// and `nk -gen user` write it) or a public user key ("U…"). It returns the
// public key, and the seed when the file holds one.
func ReadNKeyFile(path string) (public string, seed []byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("nats-nkey: %w", err)
	}
	text := strings.TrimSpace(string(b))
	switch {
	case strings.HasPrefix(text, "SU"):
		kp, err := nkeys.FromSeed([]byte(text))
		if err != nil {
			return "", nil, fmt.Errorf("nats-nkey: %s does not hold a valid user seed", path)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return "", nil, fmt.Errorf("nats-nkey: %s: %w", path, err)
		}
		return pub, []byte(text), nil
	case nkeys.IsValidPublicUserKey(text):
		return text, nil, nil
	}
	return "", nil, fmt.Errorf("nats-nkey: %s holds neither a user seed (SU…) nor a public user key (U…)", path)
}

// ServerTLS is the certificate the embedded server's listener presents, and
// the CA whose certificates clients must then present (mutual TLS), as PEM
// files.
type ServerTLS struct {
	CertFile, KeyFile string
	// CAFile, when set, makes a client certificate signed by it required.
	CAFile string
}

// Enabled reports whether a certificate is set.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

func (t ServerTLS) config() (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("nats-tls-cert and nats-tls-key: the embedded server needs both to serve TLS")
	}
	c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile, Verify: t.CAFile != ""})
	if err != nil {
		return nil, fmt.Errorf("nats-tls: %w", err)
	}
	return c, nil
}
