package local

import "context"

// AcquirePriority admits one call of the given priority at once or refuses
// it with ErrShed (it never waits); a done ctx is refused with its error.
// priority is on the scale of [Priority]: values below 0 count as
// PriorityLow and values above PriorityCritical as critical.
//
// Its signature is the one HTTP middleware takes for a shedder, so the
// shedder plugs in with a method value:
//
//	mw, err := bulwarkhttp.Shed(bulwarkhttp.ShedderFunc(shedder.AcquirePriority),
//		bulwarkhttp.WithPriority(func(r *http.Request) int { ... }))
func (s *Shedder) AcquirePriority(ctx context.Context, priority int) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Admit(Priority(min(max(priority, int(PriorityLow)), int(PriorityCritical))))
}
