package heartbeat

import (
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

func TestMailboxProbeAckFence(t *testing.T) {
	d := shareddisk.NewMem(64 << 20)
	lay, err := shareddisk.ComputeLayout(64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(d, lay, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(d, lay, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.Probe(1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Answered(1, seq); ok {
		t.Fatal("answered before node 1 served its mailbox")
	}
	if fence, err := a.Serve([]int{2}); err != nil || fence != 0 {
		t.Fatalf("serve: %d %v", fence, err)
	}
	if ok, err := b.Answered(1, seq); !ok || err != nil {
		t.Fatalf("probe not answered: %v", err)
	}
	if err := b.Fence(1, 5); err != nil {
		t.Fatal(err)
	}
	if fence, _ := a.Serve([]int{2}); fence != 5 {
		t.Fatalf("fence not seen: %d", fence)
	}
	// A restarted node continues its sequence numbers.
	b2, _ := Open(d, lay, 2, time.Second)
	if seq2, _ := b2.Probe(1); seq2 <= seq {
		t.Fatalf("probe number went back: %d after %d", seq2, seq)
	}
}

func TestBeacon(t *testing.T) {
	a, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen("127.0.0.1:0", map[int]string{1: a.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan Message, 1)
	go a.Receive(func(m Message, _ time.Time) {
		select {
		case got <- m:
		default:
		}
	})
	b.Send(Message{Node: 2, Epoch: 9, Role: 3})
	select {
	case m := <-got:
		if m.Node != 2 || m.Epoch != 9 || m.Role != 3 {
			t.Fatalf("message %+v", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no heartbeat received")
	}
	if _, err := DecodeMessage([]byte("garbage")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Message{Node: 1, Epoch: 2}.encode())
	b := make([]byte, slotSize)
	(&Slot{Node: 1, Seq: 3}).encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		DecodeMessage(in)
		decodeSlot(in)
	})
}
