package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGatecheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/health" && healthy.Load():
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/api/v1/workers":
			w.Write([]byte(`[{},{},{},{}]`))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	var stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-port", "KTRDR_API_PORT=" + port, "Backend healthy", "Workers registered"}, &stderr), stderr.String())

	healthy.Store(false)
	stderr.Reset()
	assert.Equal(t, 1, run([]string{"-port", "KTRDR_API_PORT=" + port, "Backend healthy"}, &stderr))
	assert.Contains(t, stderr.String(), "Backend healthy: ")

	for _, args := range [][]string{{}, {"No such check"}, {"-port", "KTRDR_API_PORT", "Backend healthy"}, {"-port", "K=0", "Backend healthy"}} {
		stderr.Reset()
		assert.Equal(t, 2, run(args, &stderr), "%q", args)
		assert.NotEmpty(t, stderr.String(), "%q", args)
	}
}
