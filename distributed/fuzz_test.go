package distributed_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// FuzzDifferential decodes a limit and a sequence of (advance clock, key,
// n) from the fuzzer's bytes and requires the local and the Redis limiter
// to decide identically at every step (see runSequence).
//
// Each step takes 3 bytes: how far the clock moves (including backwards),
// which of four keys (two hostile), and n.
func FuzzDifferential(f *testing.F) {
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(f, nil, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
	f.Add(uint8(0), uint32(10), uint64(1_000_000), uint32(0), []byte{0, 0, 0, 70, 1, 3, 200, 2, 9, 255, 3, 1})
	f.Add(uint8(1), uint32(3), uint64(7), uint32(0), []byte{0, 0, 2, 130, 0, 1, 131, 0, 1, 190, 1, 1, 251, 0, 2})
	f.Add(uint8(2), uint32(5), uint64(2_000), uint32(0), []byte{0, 0, 4, 10, 0, 1, 150, 0, 3, 192, 0, 5})
	f.Add(uint8(3), uint32(1000), uint64(3_600_000_000), uint32(0), []byte{0, 1, 200, 160, 1, 255, 193, 1, 9})
	f.Add(uint8(0), uint32(999_999), uint64(4_503_599), uint32(1), []byte{0, 0, 255, 64, 0, 1, 128, 0, 0})
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, alg uint8, events uint32, periodMicros uint64, burst uint32, data []byte) {
		a := algorithms[int(alg)%len(algorithms)]
		l := bulwark.Limit{Events: int(events), Period: time.Duration(periodMicros) * time.Microsecond, Burst: int(burst)}
		if periodMicros > 1<<52 || l.Validate() != nil || len(data) > 3*300 {
			return // not a limit a limiter accepts; the constructors' tests cover rejection
		}
		keys := []string{"a", "b", "{x}", "a\x00}"}
		maxN := a.maxN(l)
		s := sequence{limit: l, start: fakeclock.Epoch}
		for i := 0; i+2 < len(data); i += 3 {
			var adv time.Duration
			switch b := data[i]; {
			case b < 64:
			case b < 128:
				adv = time.Duration(b-63) * time.Microsecond
			case b < 192:
				adv = l.Period * time.Duration(b-127) / 32 / time.Microsecond * time.Microsecond
			case b < 251:
				adv = l.Period * time.Duration(b-191)
			default:
				adv = -l.Period * time.Duration(b-250) / 8 / time.Microsecond * time.Microsecond
			}
			s.steps = append(s.steps, step{advance: adv, key: keys[int(data[i+1])%len(keys)], n: 1 + int(data[i+2])%min(maxN, 256)})
		}
		runSequence(t, st, clk, a, fmt.Sprintf("fuzz-%d", seq.Add(1)), s)
	})
}
