package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/policy"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

const consoleSynopsis = `Usage: bulwark console --redis URL [--prefix P] [--listen ADDR] [--token T]

Serves a web console of the fleet under a prefix: the live replicas (the
configuration version each runs, stale ones flagged), every policy with
its configuration (defaults, live value, what runs), each breaker's
fleet-wide state, each bulkhead's holders, decision rates, denials and
degraded decisions over the last five minutes, and the change history.
From the page an operator edits a field, opens or resets a breaker and
rolls back a change.

The page and its script are embedded in the binary; it loads nothing from
elsewhere. It listens on 127.0.0.1 unless --listen says otherwise. Every
write needs the token (--token, or $BULWARK_CONSOLE_TOKEN; without either
a random one is made and printed at start), sent by the page in a header,
compared in constant time; writes must come from the page itself (same
origin, JSON body), so another site cannot make the browser send one.`

//go:embed consoleui
var consoleFiles embed.FS

// tokenHeader carries the console token of a write.
const tokenHeader = "X-Bulwark-Token"

func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("console", consoleSynopsis, stderr)
	url := fs.String("redis", "", "Redis URL, e.g. redis://127.0.0.1:6379 (required)")
	prefix := fs.String("prefix", distributed.DefaultPrefix, "the key prefix the services use (distributed.WithPrefix)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve the console on")
	token := fs.String("token", os.Getenv("BULWARK_CONSOLE_TOKEN"), "the token writes need (default $BULWARK_CONSOLE_TOKEN, else a random one, printed)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("console takes no arguments, got %q", pos)
	}
	if *token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		*token = hex.EncodeToString(b[:])
	} else if len(*token) < 16 {
		return usagef("--token must be at least 16 characters")
	}
	client, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer client.Close()
	store, err := control.New(client, control.WithPrefix(*prefix))
	if err != nil {
		return usagef("%v", err)
	}
	dist, err := distributed.New(client, distributed.WithPrefix(*prefix), distributed.WithTimeout(pingTimeout))
	if err != nil {
		return usagef("%v", err)
	}
	defer dist.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newConsole(store, dist, *token, ln.Addr().String()), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "bulwark console for prefix %q on http://%s\nwrite token: %s\n", *prefix, ln.Addr(), *token)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}

// console serves the page and its JSON API.
type console struct {
	store *control.Store
	dist  *distributed.Store
	token []byte
	hosts map[string]bool // Host headers accepted (DNS rebinding), nil: any
	mux   *http.ServeMux
}

// newConsole returns the console's handler. addr is the address it
// listens on: when it is a loopback one, only requests naming a loopback
// host are served, so a page of another site cannot reach it by DNS
// rebinding.
func newConsole(store *control.Store, dist *distributed.Store, token, addr string) http.Handler {
	c := &console{store: store, dist: dist, token: []byte(token), mux: http.NewServeMux()}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			c.hosts = map[string]bool{addr: true, "localhost:" + port: true, "127.0.0.1:" + port: true, "[::1]:" + port: true}
		}
	}
	c.mux.HandleFunc("GET /{$}", c.file("consoleui/index.html"))
	c.mux.HandleFunc("GET /console.js", c.file("consoleui/console.js"))
	c.mux.HandleFunc("GET /console.css", c.file("consoleui/console.css"))
	c.mux.HandleFunc("GET /api/fleet", c.fleet)
	c.mux.Handle("POST /api/set", c.write(c.set))
	c.mux.Handle("POST /api/rollback", c.write(c.rollback))
	c.mux.Handle("POST /api/breaker", c.write(c.breaker))
	return c
}

func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if c.hosts != nil && !c.hosts[r.Host] {
		http.Error(w, "unexpected Host header", http.StatusMisdirectedRequest)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *console) file(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		data, err := consoleFiles.ReadFile(name)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		ct := mime.TypeByExtension(name[strings.LastIndexByte(name, '.'):])
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write(data)
	}
}

// write guards a state-changing endpoint: a same-origin JSON request
// carrying the token.
func (c *console) write(h func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			writeJSON(w, http.StatusForbidden, apiError{"cross-site request refused"})
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			writeJSON(w, http.StatusForbidden, apiError{"request from another origin refused"})
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, apiError{"writes take a JSON body"})
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(tokenHeader)), c.token) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiError{"missing or wrong token"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		out, err := h(r)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, out)
		case errors.Is(err, bulwark.ErrInvalidConfig), errors.Is(err, bulwark.ErrInvalidArgument):
			var msgs []string
			for _, p := range policy.Problems(err) {
				msgs = append(msgs, p.String())
			}
			writeJSON(w, http.StatusUnprocessableEntity, apiError{"refused, nothing was written: " + strings.Join(msgs, "; ")})
		case errors.Is(err, control.ErrConflict):
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
		default:
			writeJSON(w, http.StatusBadGateway, apiError{"redis: " + err.Error()})
		}
	})
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func decodeBody(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: bad request body: %v", bulwark.ErrInvalidArgument, err)
	}
	return nil
}

type setRequest struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
	Reason string   `json:"reason"`
}

func meta(r *http.Request, reason string) (control.Meta, error) {
	if strings.TrimSpace(reason) == "" {
		return control.Meta{}, fmt.Errorf("%w: a reason is required: the history says why each change was made", bulwark.ErrInvalidArgument)
	}
	return control.Meta{Who: "console@" + r.RemoteAddr, Why: reason}, nil
}

func (c *console) set(r *http.Request) (any, error) {
	var req setRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	m, err := meta(r, req.Reason)
	if err != nil {
		return nil, err
	}
	return c.store.Assign(r.Context(), req.Name, req.Fields, m)
}

type rollbackRequest struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Reason  string `json:"reason"`
}

func (c *console) rollback(r *http.Request) (any, error) {
	var req rollbackRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	m, err := meta(r, req.Reason)
	if err != nil {
		return nil, err
	}
	return c.store.Rollback(r.Context(), req.Name, req.Version, m)
}

type breakerRequest struct {
	Name   string `json:"name"`
	Action string `json:"action"` // "open" or "reset"
	Reason string `json:"reason"`
}

// breaker opens a breaker on every replica (circuitbreaker.force=open,
// live) or resets it: the override goes and the fleet-wide state starts
// closed with an empty window.
func (c *console) breaker(r *http.Request) (any, error) {
	var req breakerRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	m, err := meta(r, req.Reason)
	if err != nil {
		return nil, err
	}
	switch req.Action {
	case "open":
		return c.store.Assign(r.Context(), req.Name, []string{"circuitbreaker.force=open"}, m)
	case "reset":
		rec, err := c.store.Assign(r.Context(), req.Name, []string{"circuitbreaker.force="}, m)
		if err != nil {
			return nil, err
		}
		if info, err := c.dist.BreakerState(r.Context(), req.Name); err == nil && info.Exists {
			b, err := c.dist.Breaker(req.Name, bulwark.DefaultBreakerConfig())
			if err != nil {
				return nil, err
			}
			defer b.Close()
			if err := b.Reset(r.Context()); err != nil {
				return nil, err
			}
		}
		return rec, nil
	}
	return nil, fmt.Errorf("%w: action must be open or reset, got %q", bulwark.ErrInvalidArgument, req.Action)
}

// fleetView is what the page shows, read afresh on every poll.
type fleetView struct {
	Prefix   string                  `json:"prefix"`
	Version  uint64                  `json:"version"`
	Now      time.Time               `json:"now"`
	Replicas []control.ReplicaStatus `json:"replicas"`
	Policies []policyView            `json:"policies"`
}

type policyView struct {
	Name      string           `json:"name"`
	Version   uint64           `json:"version"`
	Defaults  *policy.Spec     `json:"defaults"`
	Live      policy.Spec      `json:"live"`
	Effective policy.Spec      `json:"effective"`
	Fields    []fieldView      `json:"fields"`
	Breaker   *breakerView     `json:"breaker,omitempty"`
	Bulkhead  *bulkheadView    `json:"bulkhead,omitempty"`
	Counts    []control.Counts `json:"counts"`
	History   []control.Record `json:"history"`
}

// fieldView is one configured field: its default, its live value and
// what runs, as JSON text ("" when unset).
type fieldView struct {
	Path    string `json:"path"`
	Default string `json:"default"`
	Live    string `json:"live"`
}

type breakerView struct {
	State    string `json:"state"`
	Force    string `json:"force,omitempty"`
	Exists   bool   `json:"exists"`
	Calls    int64  `json:"calls"`
	Failures int64  `json:"failures"`
}

type bulkheadView struct {
	Max     int                   `json:"max"`
	Held    int64                 `json:"held"`
	Holders []semaphore.LeaseInfo `json:"holders"`
}

func (c *console) fleet(w http.ResponseWriter, r *http.Request) {
	v, err := c.view(r.Context())
	if err != nil {
		writeJSON(w, http.StatusBadGateway, apiError{"redis: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *console) view(ctx context.Context) (fleetView, error) {
	v := fleetView{Prefix: c.store.Prefix(), Now: time.Now().UTC()}
	var err error
	if v.Version, err = c.store.Version(ctx); err != nil {
		return v, err
	}
	if v.Replicas, err = c.store.Replicas(ctx); err != nil {
		return v, err
	}
	entries, err := c.store.List(ctx)
	if err != nil {
		return v, err
	}
	for _, e := range entries {
		pv := policyView{Name: e.Name, Version: e.Version, Defaults: e.Defaults, Live: e.Layer, Effective: e.Effective()}
		var defs policy.Spec
		if e.Defaults != nil {
			defs = *e.Defaults
		}
		pv.Fields = fieldsOf(defs, e.Layer)
		if eff := pv.Effective; eff.HasCircuitBreaker() {
			bv := &breakerView{Force: eff.CircuitBreaker.Force}
			if info, err := c.dist.BreakerState(ctx, e.Name); err == nil {
				bv.State, bv.Exists, bv.Calls, bv.Failures = info.State.String(), info.Exists, info.Calls, info.Failures
			}
			if bv.Force == policy.ForceOpen {
				bv.State = "open (forced)"
			} else if bv.Force == policy.ForceClosed {
				bv.State = "closed (forced)"
			}
			pv.Breaker = bv
		}
		if eff := pv.Effective; eff.HasBulkhead() && eff.Bulkhead.MaxConcurrent != nil {
			bh := &bulkheadView{Max: *eff.Bulkhead.MaxConcurrent, Holders: []semaphore.LeaseInfo{}}
			if hs, err := c.dist.BulkheadHolders(ctx, e.Name); err == nil {
				bh.Holders = hs
				for _, h := range hs {
					bh.Held += h.Weight
				}
			}
			pv.Bulkhead = bh
		}
		pv.Counts = sumCounts(v.Replicas, e.Name)
		if pv.History, err = c.store.History(ctx, e.Name, 10); err != nil {
			return v, err
		}
		v.Policies = append(v.Policies, pv)
	}
	return v, nil
}

// fieldsOf lists every field set in defaults or live.
func fieldsOf(defaults, live policy.Spec) []fieldView {
	byPath := map[string]*fieldView{}
	var order []string
	for _, ch := range policy.Diff(policy.Spec{}, defaults) {
		byPath[ch.Path] = &fieldView{Path: ch.Path, Default: ch.New}
		order = append(order, ch.Path)
	}
	for _, ch := range policy.Diff(policy.Spec{}, live) {
		f, ok := byPath[ch.Path]
		if !ok {
			f = &fieldView{Path: ch.Path}
			byPath[ch.Path] = f
			order = append(order, ch.Path)
		}
		f.Live = ch.New
	}
	out := make([]fieldView, 0, len(order))
	for _, p := range order {
		out = append(out, *byPath[p])
	}
	return out
}

// sumCounts adds up the replicas' counts of one policy, bucket by bucket.
func sumCounts(rs []control.ReplicaStatus, name string) []control.Counts {
	by := map[int64]*control.Counts{}
	for _, r := range rs {
		for _, c := range r.Policies[name].Counts {
			s, ok := by[c.T]
			if !ok {
				s = &control.Counts{T: c.T}
				by[c.T] = s
			}
			s.Decisions += c.Decisions
			s.Denied += c.Denied
			s.Degraded += c.Degraded
		}
	}
	out := make([]control.Counts, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	for i := 1; i < len(out); i++ { // few buckets: insertion sort by time
		for j := i; j > 0 && out[j].T < out[j-1].T; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
