package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvs/ctl/api"
)

// clientEnv switches the test binary into a client run as another user:
// TestMain dials the socket named by the variable, calls version and prints
// the outcome.
const clientEnv = "GVS_SERVER_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(clientEnv); path != "" {
		os.Exit(runClient(path))
	}
	os.Exit(m.Run())
}

func runClient(path string) int {
	c, err := api.Dial(path)
	if err != nil {
		fmt.Printf("dial: %v\n", err)
		return 0
	}
	defer c.Close()
	var v api.VersionInfo
	err = c.Call(api.OpVersion, nil, &v)
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		fmt.Printf("error %s: %s\n", ae.Code, ae.Message)
	case err != nil:
		fmt.Printf("failed: %v\n", err)
	default:
		fmt.Printf("ok protocol %d\n", v.Protocol)
	}
	return 0
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fake answers echo (its args back), sleep, panic and nothing else.
type fake struct{}

func (fake) Handle(ctx context.Context, op string, args json.RawMessage) (any, error) {
	switch op {
	case "echo":
		return args, nil
	case api.OpVersion:
		return api.VersionInfo{Protocol: api.Version}, nil
	case "sleep":
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return nil, nil
	case "panic":
		panic("boom")
	case "plain":
		return nil, errors.New("plain error")
	case "unencodable":
		return func() {}, nil
	}
	return nil, api.Errorf(api.CodeUnknownOp, "unknown operation %q", op)
}

func listen(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "gvsd.sock")
	}
	if cfg.Handler == nil {
		cfg.Handler = fake{}
	}
	cfg.Log = quiet
	s, err := ListenConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw is a connection that writes lines and reads replies.
type raw struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *raw {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{c, bufio.NewReaderSize(c, 1<<16)}
}

func (c *raw) roundTrip(t *testing.T, line string) api.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	return c.read(t)
}

func (c *raw) read(t *testing.T) api.Response {
	t.Helper()
	b, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	var resp api.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return resp
}

func wantErr(t *testing.T, resp api.Response, code string) {
	t.Helper()
	if resp.Error == nil || resp.Error.Code != code {
		t.Fatalf("reply %+v (error %+v), want %s", resp, resp.Error, code)
	}
}

func TestProtocolErrors(t *testing.T) {
	s := listen(t, Config{})
	c := dialRaw(t, s.Path())
	ok := func() {
		t.Helper()
		resp := c.roundTrip(t, `{"version":1,"id":42,"op":"echo","args":{"x":1}}`)
		if resp.Error != nil || resp.ID != 42 || string(resp.Result) != `{"x":1}` {
			t.Fatalf("echo: %+v %v", resp, resp.Error)
		}
	}
	ok()
	wantErr(t, c.roundTrip(t, `{"version":1,"id":1,"op":`), api.CodeBadRequest)
	ok()
	wantErr(t, c.roundTrip(t, `not json at all`), api.CodeBadRequest)
	wantErr(t, c.roundTrip(t, `{"version":1,"id":1,"op":"echo","extra":true}`), api.CodeBadRequest)
	wantErr(t, c.roundTrip(t, `{"version":1,"id":1,"op":"echo"} {"version":1}`), api.CodeBadRequest)
	wantErr(t, c.roundTrip(t, `{"version":1,"id":1}`), api.CodeBadRequest)
	resp := c.roundTrip(t, `{"version":2,"id":7,"op":"echo"}`)
	wantErr(t, resp, api.CodeVersion)
	if resp.ID != 7 || resp.Version != api.Version {
		t.Fatalf("version reply %+v", resp)
	}
	wantErr(t, c.roundTrip(t, `{"id":8,"op":"echo"}`), api.CodeVersion)
	wantErr(t, c.roundTrip(t, `{"version":1,"id":9,"op":"nosuchop"}`), api.CodeUnknownOp)
	resp = c.roundTrip(t, `{"version":1,"id":10,"op":"panic"}`)
	wantErr(t, resp, api.CodeInternal)
	if !strings.Contains(resp.Error.Message, "boom") {
		t.Fatalf("panic reply %q", resp.Error.Message)
	}
	wantErr(t, c.roundTrip(t, `{"version":1,"id":11,"op":"plain"}`), api.CodeInternal)
	wantErr(t, c.roundTrip(t, `{"version":1,"id":12,"op":"unencodable"}`), api.CodeInternal)
	// Blank lines are skipped.
	if _, err := io.WriteString(c, "\n\n"); err != nil {
		t.Fatal(err)
	}
	ok()

	// A line over the limit: too_large, then the connection is closed.
	big := dialRaw(t, s.Path())
	go func() {
		line := `{"version":1,"id":1,"op":"echo","args":"` + strings.Repeat("x", api.MaxRequest) + `"}` + "\n"
		_, _ = io.WriteString(big, line)
	}()
	_ = big.SetDeadline(time.Now().Add(5 * time.Second))
	wantErr(t, big.read(t), api.CodeTooLarge)
	if _, err := big.r.ReadBytes('\n'); err == nil {
		t.Fatal("connection still open after too_large")
	}
	// Just under the limit is served.
	args := `"` + strings.Repeat("y", api.MaxRequest-100) + `"`
	line := `{"version":1,"id":5,"op":"echo","args":` + args + `}`
	resp = c.roundTrip(t, line)
	if resp.Error != nil || len(resp.Result) != len(args) {
		t.Fatalf("large request: %v, %d bytes", resp.Error, len(resp.Result))
	}
	// The client sees typed errors.
	cl, err := api.Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var ae *api.Error
	if err := cl.Call("nosuchop", nil, nil); !errors.As(err, &ae) || ae.Code != api.CodeUnknownOp {
		t.Fatalf("client: %v", err)
	}
	if err := cl.Call(api.OpVersion, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentClients(t *testing.T) {
	s := listen(t, Config{})
	const clients, calls = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := api.Dial(s.Path())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < calls; j++ {
				var got map[string]int
				if err := c.Call("echo", map[string]int{"client": i, "call": j}, &got); err != nil {
					errs <- err
					return
				}
				if got["client"] != i || got["call"] != j {
					errs <- fmt.Errorf("client %d call %d got %v", i, j, got)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestMaxConnsAndIdle(t *testing.T) {
	s := listen(t, Config{MaxConns: 2, IdleTimeout: 200 * time.Millisecond})
	a, b := dialRaw(t, s.Path()), dialRaw(t, s.Path())
	for _, c := range []*raw{a, b} {
		if resp := c.roundTrip(t, `{"version":1,"id":1,"op":"echo"}`); resp.Error != nil {
			t.Fatal(resp.Error)
		}
	}
	third := dialRaw(t, s.Path())
	_ = third.SetDeadline(time.Now().Add(5 * time.Second))
	resp := third.read(t)
	if resp.Error == nil || !strings.Contains(resp.Error.Message, "at most 2") {
		t.Fatalf("third connection: %+v", resp)
	}
	// Idle connections are closed, which frees their slots.
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.r.ReadBytes('\n'); err == nil {
		t.Fatal("idle connection not closed")
	}
	time.Sleep(50 * time.Millisecond)
	c := dialRaw(t, s.Path())
	if resp := c.roundTrip(t, `{"version":1,"id":1,"op":"echo"}`); resp.Error != nil {
		t.Fatal(resp.Error)
	}
}

func TestSocketFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "gvs")
	path := filepath.Join(dir, "gvsd.sock")
	s := listen(t, Config{Path: path})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o750 {
		t.Fatalf("directory mode %v (%v), want 0750", di.Mode(), err)
	}
	// A second server on a live socket is refused.
	if _, err := ListenConfig(Config{Path: path, Handler: fake{}, Log: quiet}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener: %v", err)
	}
	// Close removes the socket.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s2 := listen(t, Config{Path: path})
	if resp := dialRaw(t, s2.Path()).roundTrip(t, `{"version":1,"id":1,"op":"echo"}`); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	s2.Close()
	// A file that is not a socket is left alone.
	if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenConfig(Config{Path: path, Handler: fake{}, Log: quiet}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatal("regular file replaced")
	}
	// Unknown group.
	if _, err := ListenConfig(Config{Path: filepath.Join(dir, "x.sock"), Group: "no-such-group-gvs", Handler: fake{}, Log: quiet}); err == nil {
		t.Fatal("unknown group accepted")
	}
}

func TestSocketGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	gid, name := otherGroup(t)
	dir := filepath.Join(t.TempDir(), "gvs")
	path := filepath.Join(dir, "gvsd.sock")
	listen(t, Config{Path: path, Group: name})
	for _, p := range []string{dir, path} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Gid) != gid {
			t.Fatalf("%s: group %d, want %d", p, st.Gid, gid)
		}
		want := os.FileMode(0o660)
		if p == dir {
			want = 0o750
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// otherGroup picks an existing group that is not root's, for the peer
// credential tests.
func otherGroup(t *testing.T) (int, string) {
	t.Helper()
	for _, name := range []string{"adm", "daemon", "users", "staff", "bin", "sys"} {
		if g, err := user.LookupGroup(name); err == nil {
			n, _ := strconv.Atoi(g.Gid)
			if n != 0 && n != 65534 {
				return n, name
			}
		}
	}
	t.Skip("no suitable group on this system")
	return 0, ""
}

// clientAs runs the test binary as a client with the given credentials and
// returns what it printed.
func clientAs(t *testing.T, bin, path string, cred *syscall.Credential) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d: %v\n%s", cred.Uid, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Peer credentials decide, whatever the socket file's mode: a uid that is
// neither root nor in the group is refused with a clear message; members of
// the group, by primary or supplementary gid, are served.
func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running clients as other users needs root")
	}
	gid, name := otherGroup(t)
	// A directory everyone may traverse, and a copy of the test binary
	// everyone may run (the build directory is private).
	base, err := os.MkdirTemp("", "gvs-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "client.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}

	// No group: only root (and the daemon's uid).
	s := listen(t, Config{Path: filepath.Join(base, "nogroup.sock")})
	if err := os.Chmod(s.Path(), 0o666); err != nil { // the file would stop them; test the peer check
		t.Fatal(err)
	}
	out := clientAs(t, bin, s.Path(), nobody)
	if !strings.HasPrefix(out, "error permission:") || !strings.Contains(out, "uid 65534 is not root") {
		t.Fatalf("no group, uid 65534: %q", out)
	}
	if out := clientAs(t, bin, s.Path(), &syscall.Credential{Uid: 0, Gid: 0}); out != fmt.Sprintf("ok protocol %d", api.Version) {
		t.Fatalf("root: %q", out)
	}

	// With a group.
	s = listen(t, Config{Path: filepath.Join(base, "group.sock"), Group: name})
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	out = clientAs(t, bin, s.Path(), nobody)
	if want := fmt.Sprintf("uid 65534 is not root and not in group %s", name); !strings.HasPrefix(out, "error permission:") || !strings.Contains(out, want) {
		t.Fatalf("not in group: %q, want %q", out, want)
	}
	ok := fmt.Sprintf("ok protocol %d", api.Version)
	if out := clientAs(t, bin, s.Path(), &syscall.Credential{Uid: 65534, Gid: uint32(gid), Groups: []uint32{}}); out != ok {
		t.Fatalf("primary group member: %q", out)
	}
	if out := clientAs(t, bin, s.Path(), &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{uint32(gid)}}); out != ok {
		t.Fatalf("supplementary group member: %q", out)
	}
	// And with the file's real mode (0660, the group's), an outsider cannot
	// even connect.
	if err := os.Chmod(s.Path(), 0o660); err != nil {
		t.Fatal(err)
	}
	if out := clientAs(t, bin, s.Path(), nobody); !strings.HasPrefix(out, "dial:") || !strings.Contains(out, "permission denied") {
		t.Fatalf("outsider on a 0660 socket: %q", out)
	}
	if out := clientAs(t, bin, s.Path(), &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{uint32(gid)}}); out != ok {
		t.Fatalf("member on a 0660 socket: %q", out)
	}
}

func TestParseGroups(t *testing.T) {
	g, err := parseGroups([]byte("Name:\tx\nUid:\t1 1 1 1\nGroups:\t4 24 27 \nNgid:\t0\n"))
	if err != nil || len(g) != 3 || g[0] != 4 || g[2] != 27 {
		t.Fatalf("%v %v", g, err)
	}
	if g, err := parseGroups([]byte("Groups:\n")); err != nil || len(g) != 0 {
		t.Fatalf("empty: %v %v", g, err)
	}
	if _, err := parseGroups([]byte("Name: x\n")); err == nil {
		t.Fatal("missing Groups: accepted")
	}
}

// Close ends requests in progress (their context is cancelled) and open
// connections.
func TestCloseWhileBusy(t *testing.T) {
	s := listen(t, Config{})
	c := dialRaw(t, s.Path())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, `{"version":1,"id":1,"op":"sleep"}`+"\n")
		_, _ = c.r.ReadBytes('\n')
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Fatalf("Close waited %v for a request", el)
	}
}
