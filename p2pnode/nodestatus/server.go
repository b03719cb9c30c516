package nodestatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNotLoopback is CheckAddr's error for an address others can reach.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckAddr checks a host:port to serve the status on: its host must be
// a loopback IP address or "localhost" unless public is set. An empty
// host (all interfaces) is not loopback.
func CheckAddr(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if public || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%q: %w", addr, ErrNotLoopback)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server serves a Status over HTTP: / (the page), /status.json and
// /metrics. Start it with Serve and stop it with Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
}

// Serve listens on addr (CheckAddr's rules: a loopback address unless
// public) and serves s there until Close. When not public, requests must
// name a loopback host (Host header), which keeps pages of other sites
// from reading the status through a DNS name rebound to 127.0.0.1.
func Serve(addr string, public bool, s *Status, log *slog.Logger) (*Server, error) {
	if err := CheckAddr(addr, public); err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The page has no script and no outside resource; say so.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := renderPage(w, s.Snapshot()); err != nil {
			log.Warn("status page not rendered", "err", err)
		}
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Snapshot())
	})
	// A collector that cannot read something (the process collector
	// under a sandbox hiding /proc/stat) costs its own metrics, not the
	// scrape.
	mux.Handle("GET /metrics", promhttp.HandlerFor(NewRegistry(s), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	var h http.Handler = mux
	h = headers(h)
	if !public {
		h = loopbackHostOnly(h)
	}
	srv := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(srv.done)
		if err := srv.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			srv.err = err
		}
	}()
	return srv, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: requests being answered get five seconds.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	return errors.Join(err, s.err)
}

func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if !isLoopbackHost(host) {
			http.Error(w, "this status page answers only requests to a loopback address (127.0.0.1, [::1] or localhost)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
