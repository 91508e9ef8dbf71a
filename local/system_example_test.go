package local_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// A shedder watching a signal (here one the example sets by hand; in a
// service local.NewCPUSignal, NewMemorySignal or NewSchedLatencySignal):
// low-priority work is shed from 80% until the signal is back below 60%,
// while critical work always passes.
func ExampleSystemShedder() {
	clk := fakeclock.New(fakeclock.Epoch)
	load := 0.5
	sig := local.SignalFunc("cpu", func() (float64, error) { return load, nil })
	s, err := local.NewSystemShedder(local.SystemShedderConfig{
		Rules:    []local.SystemRule{{Signal: sig, High: 0.8, Low: 0.6}},
		Interval: time.Second,
	}, local.WithClock(clk))
	if err != nil {
		panic(err)
	}
	try := func(p local.Priority) string {
		release, err := s.Admit(p)
		if errors.Is(err, local.ErrSystemOverload) {
			return "shed"
		}
		release()
		return "ok"
	}
	for _, load = range []float64{0.5, 0.85, 0.7, 0.55} {
		clk.Advance(time.Second) // the signal is read once per interval
		fmt.Printf("cpu %.2f: low %s, critical %s\n", load, try(local.PriorityLow), try(local.PriorityCritical))
	}
	// Output:
	// cpu 0.50: low ok, critical ok
	// cpu 0.85: low shed, critical ok
	// cpu 0.70: low shed, critical ok
	// cpu 0.55: low ok, critical ok
}

// A pipeline stage that takes work until 3 items are pending, then holds
// producers back until the backlog is down to 1.
func ExampleWaterMark() {
	w, err := local.NewWaterMark(local.WaterMarkConfig{High: 3, Low: 1})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	var items []func()
	for i := range 4 {
		release, err := w.Acquire(ctx) // MaxWait 0: fails at once while backpressure is on
		fmt.Printf("item %d: %v (pending %d, on %v)\n", i, err, w.Pending(), w.On())
		if err == nil {
			items = append(items, release)
		}
	}
	items[0]()
	fmt.Println("one done: on", w.On())
	items[1]()
	fmt.Println("two done: on", w.On())
	// Output:
	// item 0: <nil> (pending 1, on false)
	// item 1: <nil> (pending 2, on false)
	// item 2: <nil> (pending 3, on true)
	// item 3: bulwark: backpressure (pending 3, on true)
	// one done: on true
	// two done: on false
}
