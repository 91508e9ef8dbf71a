package bulwarkhttp_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/bulwarkhttp"
)

// A handler that sets header fields and returns in time without writing
// gets the usual 200 with its fields.
func TestTimeoutKeepsHeadersOfAnEmptyResponse(t *testing.T) {
	mw, err := bulwarkhttp.Timeout(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", "1")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("X-Seen") != "1" {
		t.Errorf("empty response = %d, X-Seen %q; want 200 with the handler's field", rec.Code, rec.Header().Get("X-Seen"))
	}
}
