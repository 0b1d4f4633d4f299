package pipeline

import (
	"bytes"
	"testing"
)

// FuzzParse feeds arbitrary frames to Parse. Besides "never panics", it
// checks that an accepted packet's offsets and addresses lie inside the
// frame (checkInvariants), that Parse is deterministic and does not write
// to the frame, and that the parse of a frame does not depend on what the
// reused Packet held before.
//
// Seeds: the valid frames below plus the committed corpus in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, b := range [][]byte{
		frameTCP4(f),
		frameTCP6(f),
		frameUDP4VLAN(f),
		frameUDP6Ext(f),
		frameICMP4FragNeeded(f, innerTCP4(f, true)[:32]),
		frameICMP6PTB(f, innerUDP6(f, true)[:80]),
	} {
		f.Add(b)
	}
	dirty := Packet{L3Off: 1000, InnerL3Off: 999, InnerProto: 6, FragHdrOff: 998, SPort: 1, Frag: FragMore}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		var p Packet
		v := Parse(data, &p)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Parse modified the frame")
		}
		checkInvariants(t, data, &p, v)
		q := dirty
		if v2 := Parse(data, &q); v2 != v || q != p {
			t.Fatalf("Parse depends on the previous Packet: %v %+v vs %v %+v", v, p, v2, q)
		}
	})
}
