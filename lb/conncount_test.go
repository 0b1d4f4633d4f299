package lb

import (
	"sync"
	"testing"
	"unsafe"
)

func TestConnCountersSum(t *testing.T) {
	c := NewConnCounters(3, 10)
	if c.MaxReals() != 10 || c.Workers() != 3 {
		t.Fatalf("MaxReals %d Workers %d", c.MaxReals(), c.Workers())
	}
	c.Add(0, 4, 5, 1)
	c.Add(1, 4, 2, 0)
	c.Add(2, 4, -1, 3)
	c.Add(2, 5, 1, 1)
	if a, i := c.Sum(4); a != 6 || i != 4 {
		t.Errorf("Sum(4) = %d, %d; want 6, 4", a, i)
	}
	if a, i := c.Sum(5); a != 1 || i != 1 {
		t.Errorf("Sum(5) = %d, %d", a, i)
	}
	// Out of range: ignored, reads zero, no panic.
	c.Add(3, 4, 100, 100)
	c.Add(-1, 4, 100, 100)
	c.Add(0, 10, 100, 100)
	if a, i := c.Sum(4); a != 6 || i != 4 {
		t.Errorf("out-of-range Add changed Sum(4) to %d, %d", a, i)
	}
	if a, i := c.Sum(10); a != 0 || i != 0 {
		t.Errorf("Sum(10) = %d, %d", a, i)
	}
	// A session counted on one worker and closed on another.
	c.Add(1, 7, -1, 0)
	if a, _ := c.Sum(7); a != 0 {
		t.Errorf("negative sum reads %d, want 0", a)
	}
	c.Add(0, 7, 1, 0)
	if a, _ := c.Sum(7); a != 0 {
		t.Errorf("Sum(7) = %d after +1 -1", a)
	}
	c.Reset(4)
	if a, i := c.Sum(4); a != 0 || i != 0 {
		t.Errorf("after Reset: %d, %d", a, i)
	}
}

// TestConnCountersLayout: rows start on cache-line boundaries and are whole
// cache lines long, so two workers never write the same line.
func TestConnCountersLayout(t *testing.T) {
	for _, maxReals := range []int{0, 1, 7, 8, 9, 100} {
		c := NewConnCounters(4, maxReals)
		if c.stride*int(unsafe.Sizeof(connCounterPair{}))%connCacheLine != 0 || c.stride < maxReals {
			t.Errorf("maxReals %d: stride %d", maxReals, c.stride)
		}
		if a := uintptr(unsafe.Pointer(&c.c[0])); a%connCacheLine != 0 {
			t.Errorf("maxReals %d: rows start at %#x", maxReals, a)
		}
	}
}

// TestConnCountersConcurrent runs writers (one per worker row) against a
// reader under the race detector.
func TestConnCountersConcurrent(t *testing.T) {
	const workers, n = 4, 20000
	c := NewConnCounters(workers, 3)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if a, i := c.Sum(1); a < 0 || i < 0 || a > workers*n {
				t.Errorf("Sum = %d, %d", a, i)
				return
			}
		}
	}()
	var ww sync.WaitGroup
	for w := range workers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for range n {
				c.Add(w, 1, 1, 0)
				c.Add(w, 2, 0, 1)
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	if a, _ := c.Sum(1); a != workers*n {
		t.Errorf("active %d, want %d", a, workers*n)
	}
	if _, i := c.Sum(2); i != workers*n {
		t.Errorf("inactive %d, want %d", i, workers*n)
	}
}
