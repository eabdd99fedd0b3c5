package gate

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gateServer(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// gateClosedAddr returns a localhost address nothing listens on.
func gateClosedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestHTTPProbe(t *testing.T) {
	tests := []struct {
		name    string
		status  int // what the server answers
		want    int // what the probe expects
		wantErr string
	}{
		{"200 wanted", 200, 200, ""},
		{"0 means 200", 200, 0, ""},
		{"503 while starting", 503, 200, "status 503, want 200"},
		{"other expected status", 302, 302, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := gateServer(t, tt.status, "")
			err := HTTPProbe(nil, s.URL+"/api/v1/health", tt.want)(t.Context())
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), s.URL+"/api/v1/health", "the error names the URL")
		})
	}
}

func TestHTTPProbeConnectionRefused(t *testing.T) {
	url := "http://" + gateClosedAddr(t) + "/api/v1/health"
	err := HTTPProbe(nil, url, 200)(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "get "+url+": ")
	assert.Contains(t, err.Error(), "connection refused")
}

func TestJSONArrayProbe(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		min     int
		wantErr string
	}{
		{"enough entries", 200, `[{"worker_id":"a"},{"worker_id":"b"},{"worker_id":"c"},{"worker_id":"d"}]`, 4, ""},
		{"more than enough", 200, ` [1,2,3,4,5]`, 4, ""},
		{"zero wanted, empty array", 200, `[]`, 0, ""},
		{"too few", 200, `[{"worker_id":"a"},{"worker_id":"b"}]`, 4, "array has 2 entries, want ≥ 4"},
		{"object wrapper", 200, `{"workers":[1,2,3,4]}`, 4, "response is a JSON object, want a bare array"},
		{"not JSON", 200, `<html>Bad Gateway</html>`, 1, "response is not JSON"},
		{"JSON but not an array", 200, `"ok"`, 1, "response is not a JSON array"},
		{"null", 200, `null`, 0, "response is null"},
		{"empty body", 200, ``, 0, "empty response"},
		{"server error", 500, `[1,2,3,4]`, 4, "status 500, want 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := gateServer(t, tt.status, tt.body)
			err := JSONArrayProbe(nil, s.URL+"/api/v1/workers", tt.min)(t.Context())
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), s.URL+"/api/v1/workers")
		})
	}
}

func TestJSONArrayProbeTypedError(t *testing.T) {
	s := gateServer(t, 200, `[1,2]`)
	err := JSONArrayProbe(nil, s.URL, 4)(t.Context())
	var short *ArrayTooShortError
	require.ErrorAs(t, err, &short)
	assert.Equal(t, 2, short.Got)
	assert.Equal(t, 4, short.Want)
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	assert.NoError(t, TCPProbe(l.Addr().String())(t.Context()))

	addr := gateClosedAddr(t)
	err = TCPProbe(addr)(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect "+addr)
}

func TestPostgresProbeNamesAddr(t *testing.T) {
	addr := gateClosedAddr(t)
	err := PostgresProbe(addr, "ktrdr", "ktrdr")(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), addr)
	var starting *PostgresStartingError
	assert.False(t, errors.As(err, &starting), "nothing listening is not 'starting up'")
}

func TestProbeHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := gateServer(t, 200, `[]`)
	assert.Error(t, HTTPProbe(nil, s.URL, 200)(ctx))
	assert.Error(t, JSONArrayProbe(nil, s.URL, 0)(ctx))
}
