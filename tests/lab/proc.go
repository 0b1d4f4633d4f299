package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Proc.Stop waits after SIGTERM before SIGKILL.
const StopGrace = 5 * time.Second

// RunTimeout bounds NS.Run.
const RunTimeout = 60 * time.Second

var errExited = errors.New("process already exited")

// Proc is an external process running inside a namespace.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// String names the process: its command line and namespace.
func (p *Proc) String() string { return p.name }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 { // keep memory bounded for chatty processes
		rest := s.b.Bytes()[s.b.Len()-1<<20:]
		s.b = *bytes.NewBuffer(append([]byte("[...]\n"), rest...))
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// command builds `ip netns exec NS name args...`: the child enters the
// namespace (and, like any `ip netns exec`, gets /sys remounted for it and
// /etc/netns/NS bind-mounted over /etc) before exec'ing name, so the PID is
// the program's own.
func (ns *NS) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Bound Wait when a daemonised grandchild keeps the output pipe open.
	cmd.WaitDelay = time.Second
	return cmd
}

// Start starts the program name with args inside the namespace, its
// stdout and stderr captured (Output). The output is logged if the test
// fails; the process (group) is stopped at cleanup if still running.
func (ns *NS) Start(name string, args ...string) *Proc {
	ns.lab.t.Helper()
	cmd := ns.command(name, args...)
	p := &Proc{
		name: fmt.Sprintf("%s in %s", strings.Join(append([]string{name}, args...), " "), ns.short),
		cmd:  cmd,
		out:  &syncBuffer{},
		done: make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		ns.fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ns.lab.mu.Lock()
	ns.lab.procs = append(ns.lab.procs, p)
	ns.lab.mu.Unlock()
	return p
}

// Output is what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0). It does not stop the process on timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s: still running after %v", p.name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, and SIGKILL after StopGrace if it
// is still running. It returns an error only if the process could not be
// stopped (an exit caused by the signal is not an error); stopping an
// already exited process reports errExited. Idempotent.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			p.stopErr = errExited
			return
		}
		pgid := p.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(StopGrace):
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(StopGrace):
			p.stopErr = fmt.Errorf("%s: not gone %v after SIGKILL", p.name, StopGrace)
		}
	})
	return p.stopErr
}

// Run runs the program name with args inside the namespace to completion
// (at most RunTimeout) and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	cmd := ns.command(name, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(RunTimeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the whole process group
		<-done
		return out.String(), fmt.Errorf("%s: killed after %v", name, RunTimeout)
	}
}
