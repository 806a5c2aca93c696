package shareddisk

import (
	"errors"
	"strings"
	"testing"
)

func TestComputeLayout(t *testing.T) {
	cases := []struct {
		size    int64
		journal uint64
		wantJ   uint64
	}{
		{MinSize, 0, DefaultMinJournalBlocks},
		{MinSize + 3*BlockSize + 17, 0, DefaultMinJournalBlocks},
		{1 << 30, 0, 4096},
		{8 << 30, 0, DefaultMaxJournalBlocks},
		{1 << 40, 0, DefaultMaxJournalBlocks},
		{(1 << 40) + 12345, 0, DefaultMaxJournalBlocks},
		{100<<20 + 511, 300, 300},
		{8 << 30, MinJournalBlocks, MinJournalBlocks},
		{3<<30 + 5<<20 + 1, 0, (3<<30 + 5<<20) / 64 / BlockSize},
	}
	for _, c := range cases {
		l, err := ComputeLayout(c.size, c.journal)
		if err != nil {
			t.Fatalf("ComputeLayout(%d, %d): %v", c.size, c.journal, err)
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ComputeLayout(%d): %+v: %v", c.size, l, err)
		}
		if l.TotalBlocks != uint64(c.size)/BlockSize || l.JournalBlocks != c.wantJ {
			t.Errorf("size %d: total %d journal %d, want journal %d", c.size, l.TotalBlocks, l.JournalBlocks, c.wantJ)
		}
		if l.JournalStart != 128 || l.BitmapStart != 128+l.JournalBlocks {
			t.Errorf("size %d: journal at %d, bitmap at %d", c.size, l.JournalStart, l.BitmapStart)
		}
		// The bitmap covers every data block, and no bitmap block is spare.
		if l.BitmapBlocks*BitsPerBitmapBlock < l.DataBlocks || (l.BitmapBlocks-1)*BitsPerBitmapBlock >= l.TotalBlocks-l.BitmapStart {
			t.Errorf("size %d: %d bitmap blocks for %d data blocks", c.size, l.BitmapBlocks, l.DataBlocks)
		}
		if l.DataStart+l.DataBlocks != l.TotalBlocks {
			t.Errorf("size %d: data %d+%d != total %d", c.size, l.DataStart, l.DataBlocks, l.TotalBlocks)
		}
	}
	l, _ := ComputeLayout(1<<40, 0)
	if l.BitmapBlocks != 8256 || l.DataStart != 128+16384+8256 {
		t.Errorf("1 TiB: bitmap %d blocks, data at %d", l.BitmapBlocks, l.DataStart)
	}
}

func TestComputeLayoutRefuses(t *testing.T) {
	if _, err := ComputeLayout(MinSize-BlockSize, 0); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "67104768") {
		t.Errorf("too small: %v", err)
	}
	if _, err := ComputeLayout(-1, 0); !errors.Is(err, ErrTooSmall) {
		t.Errorf("negative: %v", err)
	}
	if _, err := ComputeLayout(1<<30, MinJournalBlocks-1); err == nil {
		t.Error("journal below minimum accepted")
	}
	if _, err := ComputeLayout(MinSize, MinSize/BlockSize); err == nil {
		t.Error("journal as large as the disk accepted")
	}
	if _, err := ComputeLayout(MinSize, 1<<63); err == nil {
		t.Error("huge journal accepted")
	}
}

func TestValidateRejects(t *testing.T) {
	good, err := ComputeLayout(1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	muts := map[string]func(l *Layout){
		"superblock B":      func(l *Layout) { l.SuperblockB = 2 },
		"lease":             func(l *Layout) { l.LeaseBlocks = 64 },
		"mailbox":           func(l *Layout) { l.MailboxStart = 40 },
		"journal overlap":   func(l *Layout) { l.JournalStart = 100 },
		"journal small":     func(l *Layout) { l.JournalBlocks = 10 },
		"journal huge":      func(l *Layout) { l.JournalBlocks = 1 << 63 },
		"bitmap gap":        func(l *Layout) { l.BitmapStart++ },
		"bitmap short":      func(l *Layout) { l.BitmapBlocks-- },
		"data overlap":      func(l *Layout) { l.DataStart-- },
		"data past end":     func(l *Layout) { l.DataBlocks++ },
		"total small":       func(l *Layout) { l.TotalBlocks = 1000 },
		"total huge":        func(l *Layout) { l.TotalBlocks = 1 << 63 },
		"bitmap past end":   func(l *Layout) { l.JournalBlocks = l.TotalBlocks; l.BitmapStart = l.JournalStart + l.JournalBlocks },
		"all zero":          func(l *Layout) { *l = Layout{} },
		"total grew":        func(l *Layout) { l.TotalBlocks += 1 << 20 },
		"fsinfo":            func(l *Layout) { l.FSInfo = 113 },
		"lease start moved": func(l *Layout) { l.LeaseStart = 0 },
	}
	for name, mut := range muts {
		l := good
		mut(&l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, l)
		}
	}
}

func TestMailboxSlot(t *testing.T) {
	l, _ := ComputeLayout(MinSize, 0)
	for i := range MaxNodes {
		s, err := l.MailboxSlot(i)
		if err != nil || s != uint64(48+4*i) {
			t.Errorf("slot %d = %d, %v", i, s, err)
		}
	}
	for _, i := range []int{-1, MaxNodes, 1000} {
		if _, err := l.MailboxSlot(i); err == nil {
			t.Errorf("slot %d accepted", i)
		}
	}
	if FSInfoBlock != 112 || MailboxStartBlock+MailboxBlocks != FSInfoBlock {
		t.Errorf("fsinfo at %d", FSInfoBlock)
	}
}
