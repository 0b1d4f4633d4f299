package afxdp

// The XDP program is C in bpf/steer.c. The generated steer_bpfel.go and
// steer_bpfel.o are committed, so a normal build needs only Go; regenerating
// needs clang, llvm and libbpf-dev (apt-get install clang llvm libbpf-dev).
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type steer_key steer bpf/steer.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
