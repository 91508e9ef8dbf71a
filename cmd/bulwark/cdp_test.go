package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// browser is a headless Chromium driven through the DevTools protocol over
// --remote-debugging-pipe: JSON messages separated by NUL bytes, commands
// on the browser's fd 3, replies and events on its fd 4.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File // we write commands
	id      atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan cdpReply
	session string
}

type cdpReply struct {
	ID     int64           `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser starts Chromium, or skips the test when it is not
// installed and BULWARK_REQUIRE_CHROMIUM is unset.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("BULWARK_REQUIRE_CHROMIUM") != "" {
			t.Fatal("no chromium binary found and BULWARK_REQUIRE_CHROMIUM is set")
		}
		t.Skip("no chromium binary (apt-get install chromium); set BULWARK_REQUIRE_CHROMIUM to make this a failure")
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,1300", "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	outW.Close()
	b := &browser{t: t, cmd: cmd, in: cmdW, waiting: map[int64]chan cdpReply{}}
	go b.read(outR)
	t.Cleanup(func() {
		_ = cmdW.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		outR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", tail(stderr.String(), 4000))
		}
	})
	return b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func (b *browser) read(r *os.File) {
	br := bufio.NewReader(r)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var rep cdpReply
		if json.Unmarshal(msg[:len(msg)-1], &rep) != nil || rep.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[rep.ID]
		delete(b.waiting, rep.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}

// call sends one command (to the attached page when session is set) and
// waits for its reply.
func (b *browser) call(method string, params any, out any) {
	b.t.Helper()
	id := b.id.Add(1)
	ch := make(chan cdpReply, 1)
	b.mu.Lock()
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if b.session != "" && method[:7] != "Target." {
		msg["sessionId"] = b.session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		b.t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			b.t.Fatalf("cdp %s: browser exited", method)
		}
		if rep.Error != nil {
			b.t.Fatalf("cdp %s: %s", method, rep.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(rep.Result, out); err != nil {
				b.t.Fatalf("cdp %s: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("cdp %s: no reply in 30s", method)
	}
}

// open opens url in a new page and attaches to it.
func (b *browser) open(url string) {
	b.t.Helper()
	var created struct {
		TargetID string `json:"targetId"`
	}
	b.call("Target.createTarget", map[string]any{"url": url}, &created)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call("Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
}

// eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		b.t.Fatalf("eval %q: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out != nil {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			b.t.Fatalf("eval %q: value %s: %v", expr, res.Result.Value, err)
		}
	}
}

// waitTrue polls a boolean expression until it holds.
func (b *browser) waitTrue(expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ok bool
		b.eval(fmt.Sprintf("Boolean(%s)", expr), &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var text string
			b.eval("document.body.innerText", &text)
			b.t.Fatalf("page: %s not true within %v; page text:\n%s", expr, d, tail(text, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot returns the page as PNG.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var shot struct {
		Data []byte `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	return shot.Data
}
