// Package metrics owns gvsd's Prometheus exposition: a collector that turns
// one snapshot of the daemon's statistics, health states and VRRP states
// into metric families with stable names and labels on every scrape, and the
// HTTP endpoint (/metrics) that serves them with the Go runtime and process
// collectors.
//
// Nothing here keeps counters of its own: every scrape asks a Source, which
// reads what the workers published with atomic loads, so a scrape never
// takes a lock a worker needs and never slows the fast path. The metric
// names, types and labels are listed in collector.go; they are part of the
// operator-facing interface, so change them only deliberately.
//
// Imports: ctl/api, pipeline (the names of the drop reasons).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gvs/ctl/api"
)

// Source is what a scrape reads: the daemon satisfies it. Every method is
// called once per scrape, possibly from several scrapes at once, so each
// must be safe for concurrent use and cheap enough to run at the scrape
// interval. Health and VRRP may return nil when there is nothing to report.
type Source interface {
	// Stats returns the statistics of every service, real, worker and
	// driver port, as the control socket's stats operation does.
	Stats() api.Stats
	// Health returns the health state of every checked real.
	Health() []api.HealthStatus
	// VRRP returns the state of every VRRP instance.
	VRRP() []api.VRRPStatus
}

// BGPSource may be implemented by a Source to expose the BGP speaker's
// sessions and announcements (gvs_bgp_*).
type BGPSource interface {
	BGP() api.BGPStatus
}

// Versioner may be implemented by a Source to name the running gvs version
// in gvs_build_info. Without it the version comes from the binary's build
// information ("(devel)" for a plain go build).
type Versioner interface {
	VersionInfo() api.VersionInfo
}

// Path is where the exposition is served.
const Path = "/metrics"

// Limits of the HTTP server and of a scrape.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	scrapeTimeout     = 20 * time.Second // under writeTimeout, so the 503 still gets out
	maxInFlight       = 4
	shutdownTimeout   = 5 * time.Second
)

// Handler returns the /metrics handler over a fresh registry holding the
// collector of src and the Go runtime and process collectors. A scrape that
// fails for some metrics still serves the others; failures are logged with
// slog's default logger.
func Handler(src Source) http.Handler {
	return newHandler(src, slog.Default())
}

func newHandler(src Source, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: maxInFlight,
		Timeout:             scrapeTimeout,
	})
	return promhttp.InstrumentMetricHandler(reg, h)
}

// errorLog hands promhttp's errors to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("metrics: scrape error", "err", fmt.Sprint(v...))
}

// Serve serves src's metrics over HTTP on addr (host:port) at /metrics
// until ctx is done, then shuts the server down gracefully (in-flight
// scrapes get a few seconds to finish, then are cut) and returns nil. An error to listen
// on addr is returned at once; an error of the server while serving is
// returned when it happens. log may be nil.
func Serve(ctx context.Context, addr string, src Source, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, newHandler(src, log))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>gvsd</title></head><body><a href="`+Path+`">metrics</a></body></html>`+"\n")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("metrics: serving", "addr", ln.Addr().String(), "path", Path)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Scrapes still running after the grace period: cut them.
		log.Warn("metrics: graceful shutdown timed out, closing", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
	}
	log.Info("metrics: stopped", "addr", ln.Addr().String())
	return nil
}
