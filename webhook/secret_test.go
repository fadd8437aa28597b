package webhook_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/webhook"
)

func TestGenerateSecret(t *testing.T) {
	t.Parallel()

	a, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatalf("GenerateSecret: %v", err)
	}
	b, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatalf("GenerateSecret: %v", err)
	}
	if a == b {
		t.Fatalf("two secrets are equal: %q", a)
	}
	for _, s := range []string{a, b} {
		key, err := webhook.ParseSecret(s)
		if err != nil {
			t.Fatalf("ParseSecret(GenerateSecret()): %v", err)
		}
		if len(key) != 32 {
			t.Errorf("generated key is %d bytes, want 32", len(key))
		}
		if got := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key); got != s {
			t.Errorf("secret %q is not the padded base64 of its key (%q)", s, got)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()

	std := func(n int, fill byte) string {
		return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
	}
	tests := []struct {
		name    string
		secret  string
		wantLen int    // key length when valid
		wantErr string // substring of the error; "" for valid
	}{
		{name: "24 bytes", secret: std(24, 7), wantLen: 24},
		{name: "32 bytes", secret: std(32, 0xfb), wantLen: 32},
		{name: "64 bytes", secret: std(64, 0xff), wantLen: 64},
		{name: "padded", secret: std(25, 1), wantLen: 25},
		{name: "standard webhooks example", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", wantLen: 24},
		{name: "missing prefix", secret: strings.TrimPrefix(std(32, 1), webhook.SecretPrefix), wantErr: `missing "whsec_" prefix`},
		{name: "wrong prefix case", secret: "WHSEC_" + strings.TrimPrefix(std(32, 1), webhook.SecretPrefix), wantErr: "missing"},
		{name: "empty", secret: "", wantErr: "missing"},
		{name: "prefix only", secret: webhook.SecretPrefix, wantErr: "key is 0 bytes"},
		{name: "bad base64", secret: webhook.SecretPrefix + "not*base64!", wantErr: "not standard padded base64"},
		{name: "unpadded", secret: webhook.SecretPrefix + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 25)), wantErr: "not standard padded base64"},
		{name: "url alphabet", secret: webhook.SecretPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), wantErr: "not standard padded base64"},
		{name: "non-zero padding bits", secret: webhook.SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx" + "AB==", wantErr: "not standard padded base64"},
		{name: "line break", secret: std(32, 1)[:20] + "\n" + std(32, 1)[20:], wantErr: "line break"},
		{name: "surrounding space", secret: std(32, 1) + " ", wantErr: "not standard padded base64"},
		{name: "23 bytes", secret: std(23, 1), wantErr: "key is 23 bytes, want 24 to 64"},
		{name: "65 bytes", secret: std(65, 1), wantErr: "key is 65 bytes, want 24 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			key, err := webhook.ParseSecret(tt.secret)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseSecret: %v", err)
				}
				if len(key) != tt.wantLen {
					t.Fatalf("key is %d bytes, want %d", len(key), tt.wantLen)
				}
				return
			}
			if !errors.Is(err, webhook.ErrInvalidSecret) {
				t.Fatalf("ParseSecret error = %v, want one wrapping ErrInvalidSecret", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if key != nil {
				t.Errorf("key = %x alongside an error, want nil", key)
			}
		})
	}
}
