// Command gvs-backend is a small real server for demos and benchmarks: an
// HTTP server that answers every request with its name, and a UDP echo
// service.
//
//	gvs-backend --name web1 --http :80 --udp :7
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs-backend", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name to answer with (default: the host name)")
	httpAddr := fs.String("http", ":80", "HTTP listen address (empty: none)")
	udpAddr := fs.String("udp", "", "UDP echo listen address (empty: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gvs-backend: unexpected argument %q\nusage: gvs-backend [--name N] [--http ADDR] [--udp ADDR]\n", fs.Arg(0))
		return 2
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	if *httpAddr == "" && *udpAddr == "" {
		fmt.Fprintln(stderr, "gvs-backend: nothing to serve: give --http or --udp")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 2)
	if *udpAddr != "" {
		pc, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			fmt.Fprintf(stderr, "gvs-backend: %v\n", err)
			return 1
		}
		defer pc.Close()
		go func() { errc <- echo(pc) }()
	}
	var srv *http.Server
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintf(stderr, "gvs-backend: %v\n", err)
			return 1
		}
		body := []byte(*name + "\n")
		srv = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Write(body)
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintf(stderr, "gvs-backend: %v\n", err)
			return 1
		}
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return 0
}

// echo answers every datagram with itself.
func echo(pc net.PacketConn) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}
