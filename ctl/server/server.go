// Package server is gvsd's control socket: a Unix stream socket that reads
// JSON requests, one per line (ctl/api), checks who is asking, and hands
// each request to a Handler (the daemon).
//
// Who may ask: the socket file is created 0660 with the configured group
// (0600 without one), and every connection's peer credentials (SO_PEERCRED)
// are checked as well: root, the daemon's own uid, or a process whose
// primary or supplementary groups (from /proc/PID/status) include the
// configured group. Anyone else gets one permission error reply and the
// connection is closed.
//
// Robustness: a request line is bounded by api.MaxRequest (a longer one gets
// a too_large reply and the connection is closed); a malformed line gets a
// bad_request reply and the connection stays usable; a handler that panics
// produces an internal error reply, never a dead daemon. Each connection is
// served by its own goroutine; idle connections are closed after
// Config.IdleTimeout.
//
// Imports: ctl/api.
package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"gvs/ctl/api"
)

// Handler answers requests. The daemon (ctl/daemon.Daemon) satisfies it.
// Handle runs on the connection's goroutine, concurrently with other
// connections' requests. It returns the result to encode (nil for none) or
// an error; an *api.Error is sent as it is, any other error as internal.
type Handler interface {
	Handle(ctx context.Context, op string, args json.RawMessage) (any, error)
}

// Defaults of Config.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxConns       = 64
	writeTimeout          = 10 * time.Second
	// firstRequestTimeout bounds the wait for the request a refused peer is
	// answered on.
	firstRequestTimeout = 5 * time.Second
)

// Config configures a Server.
type Config struct {
	Path string // socket path (api.DefaultSocket)
	// Group may use the socket besides root and the daemon's own user: a
	// group name or a numeric gid. Empty: nobody else (the socket is 0600).
	Group   string
	Handler Handler
	Log     *slog.Logger
	// IdleTimeout closes a connection that sends no request for that long
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// RequestTimeout bounds one request's handling (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// MaxConns bounds the connections served at once (DefaultMaxConns);
	// further ones get an error reply and are closed.
	MaxConns int
}

// Server is a listening control socket.
type Server struct {
	cfg    Config
	ln     *net.UnixListener
	fi     os.FileInfo // the socket file we created
	gid    int         // -1: no group
	uid    int         // the daemon's own uid
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen creates the control socket at path, usable by root, the daemon's
// user and the members of group (a name or a gid; "" for none), and serves
// requests with h until Close.
func Listen(path, group string, h Handler, log *slog.Logger) (*Server, error) {
	return ListenConfig(Config{Path: path, Group: group, Handler: h, Log: log})
}

// ListenConfig is Listen with every setting.
func ListenConfig(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("control socket: no handler")
	}
	if cfg.Path == "" {
		cfg.Path = api.DefaultSocket
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	gid, err := LookupGroup(cfg.Group)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, gid: gid, uid: os.Getuid(), log: cfg.Log, conns: map[net.Conn]struct{}{},
		sem: make(chan struct{}, cfg.MaxConns)}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	s.log.Info("control socket listening", "path", cfg.Path, "group", cfg.Group)
	return s, nil
}

// LookupGroup resolves a group name or numeric gid; "" gives -1 (no group).
func LookupGroup(group string) (int, error) {
	if group == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("control socket group %q: %w", group, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("control socket group %q: gid %q is not a number", group, g.Gid)
	}
	return n, nil
}

// listen prepares the directory, removes a stale socket and creates ours.
func (s *Server) listen() error {
	path := s.cfg.Path
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		if s.gid >= 0 {
			// Members of the group must reach the socket.
			if err := os.Chown(dir, -1, s.gid); err != nil {
				return fmt.Errorf("control socket directory %s: %w", dir, err)
			}
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return fmt.Errorf("control socket directory %s: %w", dir, err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("control socket %s: the file exists and is not a socket; not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control socket %s: another process listens on it (another gvsd?)", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
		s.log.Info("removed stale control socket", "path", path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it, if it is still ours
	fail := func(err error) error {
		ln.Close()
		os.Remove(path)
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	if s.gid >= 0 {
		if err := os.Chown(path, -1, s.gid); err != nil {
			return fail(err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	s.ln, s.fi = ln, fi
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.cfg.Path }

// Close stops listening, closes every connection, waits for their
// goroutines and removes the socket file (if it is still the one Listen
// created).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if fi, e := os.Lstat(s.cfg.Path); e == nil && os.SameFile(fi, s.fi) {
		if e := os.Remove(s.cfg.Path); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			s.log.Warn("control socket accept", "error", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// errTooLarge reports a request line longer than api.MaxRequest.
var errTooLarge = errors.New("request too large")

// readLine reads one line of at most max bytes (newline included). A last
// line without a newline is returned before io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, errTooLarge
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

func (s *Server) serve(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.reply(c, api.Response{Version: api.Version, Error: api.Errorf(api.CodeInternal,
			"gvsd serves at most %d control connections at once; try again", s.cfg.MaxConns)})
		return
	}
	if err := s.authorize(c); err != nil {
		// Answer the first request with the refusal, so that a client sees
		// it as the reply to its call, then hang up.
		id := uint64(0)
		_ = c.SetReadDeadline(time.Now().Add(firstRequestTimeout))
		if line, e := readLine(r, api.MaxRequest); e == nil {
			var req api.Request
			if json.Unmarshal(line, &req) == nil {
				id = req.ID
			}
		}
		s.reply(c, api.Response{Version: api.Version, ID: id, Error: err})
		return
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		line, err := readLine(r, api.MaxRequest)
		if errors.Is(err, errTooLarge) {
			s.log.Warn("control request too large; connection closed", "limit", api.MaxRequest)
			s.reply(c, api.Response{Version: api.Version, Error: api.Errorf(api.CodeTooLarge,
				"request line longer than %d bytes", api.MaxRequest)})
			return
		}
		if err != nil {
			return // EOF, idle timeout, Close
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !s.reply(c, s.handle(line)) {
			return
		}
	}
}

// reply writes one response line; false if the connection is unusable.
func (s *Server) reply(c net.Conn, resp api.Response) bool {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(api.Response{Version: api.Version, ID: resp.ID,
			Error: api.Errorf(api.CodeInternal, "encode reply: %v", err)})
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.Write(append(b, '\n'))
	return err == nil
}

// handle decodes and answers one request line.
func (s *Server) handle(line []byte) api.Response {
	resp := api.Response{Version: api.Version}
	var req api.Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		resp.Error = api.Errorf(api.CodeBadRequest, "malformed request: %v", err)
		return resp
	}
	resp.ID = req.ID
	if dec.More() {
		resp.Error = api.Errorf(api.CodeBadRequest, "malformed request: more than one JSON value on the line")
		return resp
	}
	if req.Version != api.Version {
		resp.Error = api.Errorf(api.CodeVersion, "protocol version %d not spoken; gvsd speaks version %d", req.Version, api.Version)
		return resp
	}
	if req.Op == "" {
		resp.Error = api.Errorf(api.CodeBadRequest, "request without an op")
		return resp
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.call(ctx, &req)
	if err == nil && res != nil {
		b, e := json.Marshal(res)
		if e != nil {
			err = fmt.Errorf("encode %s result: %w", req.Op, e)
		} else {
			resp.Result = b
		}
	}
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			ae = api.Errorf(api.CodeInternal, "%s: %v", req.Op, err)
		}
		resp.Error = ae
	}
	s.log.Debug("control request", "op", req.Op, "id", req.ID, "duration", time.Since(start), "error", resp.Error)
	return resp
}

// call runs the handler, turning a panic into an internal error.
func (s *Server) call(ctx context.Context, req *api.Request) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("control request panicked", "op", req.Op, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, api.Errorf(api.CodeInternal, "internal error in %s: %v", req.Op, p)
		}
	}()
	return s.cfg.Handler.Handle(ctx, req.Op, req.Args)
}

// Peer is who is at the other end of a connection.
type Peer struct {
	PID, UID, GID int
}

// PeerOf returns the credentials of a Unix socket's peer (SO_PEERCRED).
func PeerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, cerr
	}
	return Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// authorize checks the peer: root, the daemon's uid, or in the group.
func (s *Server) authorize(c *net.UnixConn) *api.Error {
	p, err := PeerOf(c)
	if err != nil {
		s.log.Warn("control connection refused: no peer credentials", "error", err)
		return api.Errorf(api.CodePermission, "peer credentials unavailable: %v", err)
	}
	if p.UID == 0 || p.UID == s.uid {
		return nil
	}
	if s.gid >= 0 {
		if p.GID == s.gid {
			return nil
		}
		if groups, err := procGroups(p.PID); err == nil && slices.Contains(groups, s.gid) {
			return nil
		}
	}
	var msg string
	if s.gid >= 0 {
		msg = fmt.Sprintf("uid %d is not root and not in group %s", p.UID, s.cfg.Group)
	} else {
		msg = fmt.Sprintf("uid %d is not root (gvsd's control socket has no group; see gvsd --socket-group)", p.UID)
	}
	s.log.Warn("control connection refused", "pid", p.PID, "uid", p.UID, "gid", p.GID, "reason", msg)
	return api.Errorf(api.CodePermission, "permission denied: %s", msg)
}

// procGroups reads the supplementary groups of a process.
func procGroups(pid int) ([]int, error) {
	if pid <= 0 {
		return nil, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return parseGroups(b)
}

// parseGroups extracts the Groups: line of a /proc/PID/status file.
func parseGroups(status []byte) ([]int, error) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var out []int
		for _, f := range strings.Fields(rest) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("bad group %q", f)
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, errors.New("no Groups: line")
}
