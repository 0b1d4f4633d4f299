// Package namedns creates and deletes named network namespaces the way
// `ip netns add` and `ip netns delete` do (a bind mount under Dir), so that
// `ip netns exec` works on them, without moving the calling thread. The
// test harness (tests/lab) and the benchmark topology (bench) share it.
package namedns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where iproute2 keeps named network namespaces.
const Dir = "/run/netns"

// ensureDir makes Dir a shared mount point, as iproute2 does, so
// that namespace mounts propagate between mount namespaces and unmounting
// one frees the namespace everywhere.
func ensureDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	for made := false; ; made = true {
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || made {
			return fmt.Errorf("make %s shared: %w", Dir, err)
		}
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", Dir, err)
		}
	}
}

var dirOnce = sync.OnceValue(ensureDir)

// Create creates a new network namespace and bind-mounts it at
// Dir/name. The calling goroutine's thread is not affected.
func Create(name string) (netns.NsHandle, error) {
	if err := dirOnce(); err != nil {
		return -1, err
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return -1, err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		err = unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
		if serr := netns.Set(orig); serr != nil {
			// Leave the thread locked: the runtime discards it when this
			// goroutine exits, instead of reusing a thread in the wrong ns.
			errc <- errors.Join(err, fmt.Errorf("return to the original namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("bind-mount: %w", err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return -1, err
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		Delete(name)
		return -1, err
	}
	return h, nil
}

// Delete unmounts and removes Dir/name, as `ip netns delete`.
// The namespace itself goes away with its last reference.
func Delete(name string) error {
	path := filepath.Join(Dir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err == unix.EINVAL || err == unix.ENOENT {
		err = nil // not mounted (half-created)
	}
	if rerr := os.Remove(path); rerr != nil && !os.IsNotExist(rerr) {
		err = errors.Join(err, rerr)
	}
	return err
}

// EnsureDir makes Dir a shared mount point (once per process); Create
// calls it itself.
func EnsureDir() error { return dirOnce() }

// Do runs fn on an OS thread switched into the network namespace h (called
// name in errors) and returns fn's error; a panic in fn is returned as an
// error with its stack. Sockets, XDP links and netlink handles fn creates
// stay in the namespace and may be used from any thread afterwards; fn
// must create them itself, not in goroutines it starts. A thread that
// cannot be switched back stays locked and is discarded by the runtime.
func Do(h netns.NsHandle, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return
		}
		var ferr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					ferr = fmt.Errorf("panic in network namespace %s: %v\n%s", name, r, debug.Stack())
				}
			}()
			ferr = fn()
		}()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
