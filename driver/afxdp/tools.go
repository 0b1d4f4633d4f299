//go:build tools

package afxdp

// Keeps bpf2go (used by go:generate in gen.go) and its dependencies in
// go.mod and go.sum through go mod tidy.
import _ "github.com/cilium/ebpf/cmd/bpf2go"
