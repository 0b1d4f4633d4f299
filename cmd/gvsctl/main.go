// Command gvsctl controls gvsd over its control socket with ipvsadm's
// command line, so operators keep their habits, plus subcommands for what
// ipvsadm lacks:
//
//	gvsctl -A -t 10.0.0.1:80 -s wrr -p 300
//	gvsctl -a -t 10.0.0.1:80 -r 10.0.1.11:8080 -m -w 3
//	gvsctl -Ln [--stats|--rate|-c] [-o json]
//	gvsctl -S > rules; gvsctl -R < rules
//	gvsctl reload | health | vrrp | bgp [drain|undrain] | conns | stats [--watch] | version
//
// The grammar, the tables and what differs from ipvsadm are in package
// gvs/ctl/ipvsadm; this command parses, dials, calls and prints. The socket
// is --socket, else $GVS_SOCKET, else /run/gvs/gvsd.sock.
//
// Exit status: 0 on success, 1 when gvsd refuses the request (its message
// is printed as "gvsctl: <message>") or cannot be reached, 2 on bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/ipvsadm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is gvsctl with its arguments and standard files; it returns the exit
// status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, err := ipvsadm.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "gvsctl: %v\n\n%s", err, ipvsadm.Usage)
		return 2
	}
	if cmd.Action == ipvsadm.ActHelp {
		fmt.Fprint(stdout, ipvsadm.Usage)
		return 0
	}
	if cmd.Action == ipvsadm.ActRestore {
		// The request (the rules JSON-encoded) must stay under
		// api.MaxRequest; Call refuses a larger one with a clear error.
		text, err := io.ReadAll(io.LimitReader(stdin, api.MaxRequest+1))
		if err != nil {
			fmt.Fprintf(stderr, "gvsctl: read rules from stdin: %v\n", err)
			return 1
		}
		if len(text) > api.MaxRequest {
			fmt.Fprintf(stderr, "gvsctl: rules on stdin exceed the %d-byte request limit\n", api.MaxRequest)
			return 1
		}
		cmd.Args = api.RestoreArgs{Text: string(text)}
	}
	socket := cmd.Socket
	if socket == "" {
		socket = os.Getenv("GVS_SOCKET")
	}
	if socket == "" {
		socket = api.DefaultSocket
	}
	c, err := api.Dial(socket)
	if err != nil {
		fmt.Fprintf(stderr, "gvsctl: %v\n", err)
		return 1
	}
	defer c.Close()
	ctx := context.Background()
	if cmd.Watch > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	if err := execute(ctx, c, cmd, stdout, stderr); err != nil {
		// A daemon error is its message; others (connection, I/O) say what
		// failed.
		var ae *api.Error
		if errors.As(err, &ae) {
			fmt.Fprintf(stderr, "gvsctl: %s\n", ae.Message)
		} else {
			fmt.Fprintf(stderr, "gvsctl: %v\n", err)
		}
		return 1
	}
	return 0
}

// execute calls the daemon for cmd and prints the result.
func execute(ctx context.Context, c *api.Client, cmd ipvsadm.Command, stdout, stderr io.Writer) error {
	switch cmd.Action {
	case ipvsadm.ActList:
		var st api.Stats
		if err := c.Call(cmd.Op, cmd.Args, &st); err != nil {
			return err
		}
		if cmd.List.Single && len(st.Services) == 0 {
			f := cmd.Args.(api.ServiceFilter)
			return api.Errorf(api.CodeNotFound, "no service %s", ipvsadm.ServiceText(*f.Service))
		}
		if cmd.JSON {
			return writeJSON(stdout, st)
		}
		switch {
		case cmd.List.Stats:
			return ipvsadm.FormatStats(stdout, st.Services, cmd.List)
		case cmd.List.Rate:
			return ipvsadm.FormatRate(stdout, st.Services, cmd.List)
		}
		return ipvsadm.FormatList(stdout, st.Services, cmd.List)

	case ipvsadm.ActConns, ipvsadm.ActSessions:
		page, more, err := sessions(c, cmd)
		if err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, page)
		}
		if cmd.Action == ipvsadm.ActConns {
			err = ipvsadm.FormatConns(stdout, page.Sessions, cmd.List)
		} else {
			err = ipvsadm.FormatSessions(stdout, page.Sessions)
		}
		if err == nil && more {
			fmt.Fprintf(stderr, "gvsctl: more sessions than the %d listed (--limit 0 lists all)\n", cmd.Limit)
		}
		return err

	case ipvsadm.ActSave:
		var res api.SaveResult
		if err := c.Call(cmd.Op, cmd.Args, &res); err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, res)
		}
		_, err := io.WriteString(stdout, res.Text)
		return err

	case ipvsadm.ActStats:
		return stats(ctx, c, cmd, stdout)

	case ipvsadm.ActHealth:
		var hs []api.HealthStatus
		if err := c.Call(cmd.Op, cmd.Args, &hs); err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, hs)
		}
		return ipvsadm.FormatHealth(stdout, hs)

	case ipvsadm.ActVRRP:
		var vs []api.VRRPStatus
		if err := c.Call(cmd.Op, cmd.Args, &vs); err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, vs)
		}
		return ipvsadm.FormatVRRP(stdout, vs)

	case ipvsadm.ActBGP, ipvsadm.ActBGPDrain:
		var bs api.BGPStatus
		if err := c.Call(cmd.Op, cmd.Args, &bs); err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, bs)
		}
		return ipvsadm.FormatBGP(stdout, bs)

	case ipvsadm.ActVersion:
		var v api.VersionInfo
		if err := c.Call(cmd.Op, cmd.Args, &v); err != nil {
			return err
		}
		if cmd.JSON {
			return writeJSON(stdout, v)
		}
		return ipvsadm.FormatVersion(stdout, v, runtime.Version())
	}
	// Changes (-A -E -D -a -e -d -C -Z -R, reload) print nothing on
	// success, as ipvsadm.
	return c.Call(cmd.Op, cmd.Args, nil)
}

// sessions pages through OpSessions until cmd.Limit sessions (0: all) or
// the last page; more reports that the limit cut the listing short.
func sessions(c *api.Client, cmd ipvsadm.Command) (api.SessionPage, bool, error) {
	f := cmd.Args.(api.SessionFilter)
	var out api.SessionPage
	for {
		f.Limit = api.MaxSessions
		if cmd.Limit > 0 {
			f.Limit = min(cmd.Limit-len(out.Sessions), api.MaxSessions)
		}
		var page api.SessionPage
		if err := c.Call(api.OpSessions, f, &page); err != nil {
			return out, false, err
		}
		out.Sessions = append(out.Sessions, page.Sessions...)
		if cmd.Limit > 0 && len(out.Sessions) >= cmd.Limit {
			out.Sessions = out.Sessions[:cmd.Limit]
			return out, page.Next != "", nil
		}
		if page.Next == "" || len(page.Sessions) == 0 || page.Next == f.Cursor {
			return out, false, nil
		}
		f.Cursor = page.Next
	}
}

// stats prints `gvsctl stats`, once or every cmd.Watch until ctx is done
// (Ctrl-C) or cmd.Count refreshes. With -o json each refresh is one line.
func stats(ctx context.Context, c *api.Client, cmd ipvsadm.Command, stdout io.Writer) error {
	for n := 1; ; n++ {
		var st api.Stats
		if err := c.Call(cmd.Op, cmd.Args, &st); err != nil {
			return err
		}
		var err error
		switch {
		case cmd.JSON && cmd.Watch > 0:
			err = json.NewEncoder(stdout).Encode(st)
		case cmd.JSON:
			err = writeJSON(stdout, st)
		case cmd.Watch > 0:
			// Home, clear, then the frame: a redraw in place.
			_, err = fmt.Fprintf(stdout, "\x1b[H\x1b[2JEvery %s: gvsctl stats    %s\n\n", cmd.Watch, time.Now().Format(time.DateTime))
			if err == nil {
				err = ipvsadm.FormatReport(stdout, st)
			}
		default:
			err = ipvsadm.FormatReport(stdout, st)
		}
		if err != nil || cmd.Watch == 0 || (cmd.Count > 0 && n >= cmd.Count) {
			return err
		}
		t := time.NewTimer(cmd.Watch)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
