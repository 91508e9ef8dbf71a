package bulwarkhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/local"
)

// A local.Shedder plugs into Shed through its AcquirePriority method; here
// the X-Priority header ("low", "critical") sets each request's priority.
func ExampleShed() {
	shedder, err := local.NewShedder(local.ShedderConfig{MaxInFlight: 2}) // low work only while none is in flight
	if err != nil {
		panic(err)
	}
	shed, err := bulwarkhttp.Shed(bulwarkhttp.ShedderFunc(shedder.AcquirePriority),
		bulwarkhttp.WithPriority(func(r *http.Request) int {
			if r.Header.Get("X-Priority") == "critical" {
				return int(local.PriorityCritical)
			}
			return int(local.PriorityLow)
		}))
	if err != nil {
		panic(err)
	}
	h := shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	release, _ := shedder.Admit(local.PriorityCritical) // one long call in flight
	defer release()
	for _, p := range []string{"low", "critical"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Priority", p)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(p, rec.Code)
	}
	// Output:
	// low 503
	// critical 200
}
