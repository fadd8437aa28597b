package main

import (
	"errors"
	"flag"

	"github.com/hookstream/hookstream/streams"
)

// natsFlags are the credentials and TLS files of the NATS connection: the
// ones clients of the embedded server must present (serve --nats-listen),
// or the ones this role connects to --nats-url with. Secrets are never
// logged; --nats-password and --nats-token are best given through their
// environment twins, since other local users can read a command line.
type natsFlags struct {
	user, password, token, nkeyFile, credsFile string
	tlsCA, tlsCert, tlsKey                     string
}

func addNATSFlags(fs *flag.FlagSet, nf *natsFlags, role string) {
	embedded := role == roleServe
	both := func(listen, url string) string {
		if embedded {
			return "with --nats-listen: " + listen + "; with --nats-url: " + url
		}
		return url
	}
	fs.StringVar(&nf.user, "nats-user", "", both("the user clients must connect as", "the user to connect as")+" (with --nats-password)")
	fs.StringVar(&nf.password, "nats-password", "", "the password of --nats-user (at least 16 characters for the embedded server; give it as HOOKSTREAM_NATS_PASSWORD)")
	fs.StringVar(&nf.token, "nats-token", "", both("the token clients must present", "the token to connect with")+" (give it as HOOKSTREAM_NATS_TOKEN)")
	fs.StringVar(&nf.nkeyFile, "nats-nkey", "", both("file with the user nkey (seed SU… or public key U…) a client may sign in with", "file with the user nkey seed (SU…) to sign in with"))
	fs.StringVar(&nf.credsFile, "nats-creds", "", "with --nats-url: credentials file (user JWT and seed) to connect with")
	fs.StringVar(&nf.tlsCA, "nats-tls-ca", "", both("CA whose client certificates are then required", "CA that signs the server's certificate (default: the system's)"))
	fs.StringVar(&nf.tlsCert, "nats-tls-cert", "", both("the server's certificate, to serve TLS", "client certificate, for a server that requires one")+" (with --nats-tls-key)")
	fs.StringVar(&nf.tlsKey, "nats-tls-key", "", "the key of --nats-tls-cert")
}

// given reports whether any credential or TLS file was given.
func (nf *natsFlags) given() bool {
	return nf.user != "" || nf.password != "" || nf.token != "" || nf.nkeyFile != "" || nf.credsFile != "" ||
		nf.tlsCA != "" || nf.tlsCert != "" || nf.tlsKey != ""
}

// serverAuth is what the embedded server requires of its clients.
func (nf *natsFlags) serverAuth() (streams.ServerAuth, streams.ServerTLS, error) {
	if nf.credsFile != "" {
		return streams.ServerAuth{}, streams.ServerTLS{}, errors.New("nats-creds: only with --nats-url (the embedded server does not run in operator mode; use --nats-nkey)")
	}
	a := streams.ServerAuth{User: nf.user, Password: nf.password, Token: nf.token}
	if nf.nkeyFile != "" {
		pub, _, err := streams.ReadNKeyFile(nf.nkeyFile)
		if err != nil {
			return a, streams.ServerTLS{}, err
		}
		a.NKeys = []string{pub}
	}
	return a, streams.ServerTLS{CertFile: nf.tlsCert, KeyFile: nf.tlsKey, CAFile: nf.tlsCA}, a.Validate()
}

// dialConfig is how this role connects to --nats-url.
func (nf *natsFlags) dialConfig(url, name string) streams.DialConfig {
	return streams.DialConfig{
		URL: url, Name: name, CredsFile: nf.credsFile, NKeySeedFile: nf.nkeyFile,
		User: nf.user, Password: nf.password, Token: nf.token,
		TLSCAFile: nf.tlsCA, TLSCertFile: nf.tlsCert, TLSKeyFile: nf.tlsKey,
	}
}

// validateNATS checks the NATS flags before anything starts.
func (f *serverFlags) validateNATS() error {
	if f.embedded() {
		if f.natsListen == "" {
			if f.nats.given() {
				return errors.New("nats-listen: the --nats-user, --nats-token, --nats-nkey and --nats-tls-* flags of serve protect --nats-listen or go with --nats-url; give one of them")
			}
			return nil
		}
		auth, tls, err := f.nats.serverAuth()
		if err != nil {
			return err
		}
		if tls.Enabled() && (tls.CertFile == "" || tls.KeyFile == "") {
			return errors.New("nats-tls-cert and nats-tls-key: the embedded server needs both to serve TLS")
		}
		return streams.CheckListen(f.natsListen, auth)
	}
	if f.natsListen != "" {
		return errors.New("nats-listen: exposes the embedded NATS server, which --nats-url replaces; give one of them")
	}
	return f.nats.dialConfig(f.natsURL, "").Validate()
}

// embedded reports whether this role runs the embedded NATS server.
func (f *serverFlags) embedded() bool { return f.role == roleServe && f.natsURL == "" }
