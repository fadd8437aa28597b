package streams

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookstream/hookstream/netguard"
)

// DialConfig says how to reach an external NATS server or cluster and how
// to authenticate to it. At most one credential is given: a creds file, an
// nkey seed file, a user and password, or a token (credentials in the URL,
// nats://user:password@host, work too). TLS is used when the URL says
// tls:// or the server requires it; TLSCAFile and the client certificate
// configure it.
type DialConfig struct {
	// URL is the server, or a comma-separated list of a cluster's servers.
	URL string
	// Name names the connection in the server's monitoring.
	Name string
	// CredsFile is a JWT and nkey seed file (`nsc generate creds`).
	CredsFile string
	// NKeySeedFile is a file holding a user nkey seed (SU…).
	NKeySeedFile string
	// User and Password, or Token.
	User, Password string
	Token          string
	// TLSCAFile verifies the server's certificate (instead of the system's
	// roots); TLSCertFile and TLSKeyFile are the client certificate, for a
	// server that requires one. PEM files.
	TLSCAFile, TLSCertFile, TLSKeyFile string
}

// Validate refuses a combination that cannot work, naming the flags.
func (c DialConfig) Validate() error {
	n := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.User != "" || c.Password != "", c.Token != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("nats-url: give one of --nats-creds, --nats-nkey, --nats-user and --nats-password, or --nats-token")
	case (c.User == "") != (c.Password == ""):
		return errors.New("nats-user and nats-password: give both or neither")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("nats-tls-cert and nats-tls-key: give both or neither")
	}
	return nil
}

// options are the nats.go options c stands for.
func (c DialConfig) options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		_, seed, err := ReadNKeyFile(c.NKeySeedFile)
		if err != nil {
			return nil, err
		}
		if seed == nil {
			return nil, fmt.Errorf("nats-nkey: %s holds a public key; connecting to --nats-url needs the seed (SU…)", c.NKeySeedFile)
		}
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats-nkey: %w", err)
		}
		opts = append(opts, opt)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	return opts, nil
}

// Dial connects with reconnects on; opts are added after c's own. Its
// error names the URL with any credentials in it hidden, and never a
// credential given apart.
func (c DialConfig) Dial(opts ...nats.Option) (*nats.Conn, error) {
	own, err := c.options()
	if err != nil {
		return nil, err
	}
	return Dial(c.URL, c.Name, append(own, opts...)...)
}

// Dial connects to an external NATS server with reconnects on, named name.
func Dial(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats-url: connect to %s: %w", RedactURLs(url), err)
	}
	return nc, nil
}

// RedactURLs is a comma-separated list of NATS URLs with the user names,
// passwords and tokens in them hidden, for errors and logs.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if strings.Contains(p, "@") {
			p = strings.TrimSpace(p)
			if !strings.Contains(p, "://") {
				p = "nats://" + p
			}
			parts[i] = netguard.RedactURL(p)
		}
	}
	return strings.Join(parts, ",")
}
