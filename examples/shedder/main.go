// Command shedder shows priority load shedding: as the in-flight count
// rises, low-priority work is turned away first and critical work last.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	shedder, err := local.NewShedder(local.ShedderConfig{MaxInFlight: 10})
	if err != nil {
		log.Fatal(err)
	}
	ex, err := bulwark.Compose[string](shedder)
	if err != nil {
		log.Fatal(err)
	}
	var held []func()
	for _, load := range []int{0, 5, 7, 9} {
		for len(held) < load { // long-running critical work occupies slots
			release, _ := shedder.Admit(local.PriorityCritical)
			held = append(held, release)
		}
		fmt.Printf("%d in flight:", shedder.InFlight())
		for p := local.PriorityLow; p <= local.PriorityCritical; p++ {
			ctx := local.WithPriority(context.Background(), p)
			_, err := ex.Run(ctx, func(context.Context) (string, error) { return "ok", nil })
			verdict := "served"
			if err != nil {
				verdict = "shed"
			}
			fmt.Printf("  %s %s", p, verdict)
		}
		fmt.Println()
	}
	for _, release := range held {
		release()
	}
}
