//go:build !dpdk

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A gvsd built without the dpdk tag refuses DPDK ports, saying how to build
// one that has them.
func TestDPDKRefusedWithoutTag(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gvsd.toml")
	doc := "[[port]]\nname = \"eth0\"\ndriver = \"dpdk\"\n\n[[service]]\nproto = \"tcp\"\nvip = \"198.18.250.10\"\nport = 80\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--check", "--config", cfg}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "built without DPDK support") || !strings.Contains(errb.String(), "-tags dpdk") {
		t.Errorf("message %q", errb.String())
	}
}
