package bulwarktest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestBuildImage(t *testing.T) {
	RequireDocker(t)
	e, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// BuildImage with a tag of the test's own, so that test binaries using
	// LocalImage meanwhile are not disturbed.
	tag := "bulwarktest/redis:buildtest-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _, _ = e.cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true}) })
	for range 2 { // the second build replaces the first
		out, err := e.buildImage(ctx, tag)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Successfully tagged "+tag) {
			t.Fatalf("build output does not tag %s:\n%s", tag, out)
		}
	}
	ok, err := ImageExists(ctx, tag)
	if err != nil || !ok {
		t.Fatalf("ImageExists(%s) = %v, %v after the build", tag, ok, err)
	}
	if ok, err := ImageExists(ctx, "bulwarktest/no-such-image:none"); err != nil || ok {
		t.Fatalf("ImageExists of a missing image = %v, %v", ok, err)
	}
	srv := StartRedis(t, WithImage(tag))
	if srv.Backend() != Container {
		t.Fatalf("WithImage started a %v server, want a container", srv.Backend())
	}
	if v := srv.Do(t, "INFO", "server"); !strings.Contains(v.(string), "redis_version:") {
		t.Fatalf("INFO server from the built image: %v", v)
	}
	if _, err := ImageFromBinary(ctx, tag, "/bin/true", "relative/path"); err == nil {
		t.Fatal("ImageFromBinary with a relative destination did not fail")
	}
}

func TestSharedLibraries(t *testing.T) {
	redistest.RequireServer(t)
	bin, err := serverBinary()
	if err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibraries(bin)
	if err != nil {
		t.Fatal(err)
	}
	hasLibc := false
	for _, l := range libs {
		if !strings.HasPrefix(l, "/") {
			t.Errorf("library path %q is not absolute", l)
		}
		if strings.Contains(l, "libc.so") {
			hasLibc = true
		}
	}
	if !hasLibc {
		t.Errorf("ldd of %s lists no libc: %v", bin, libs)
	}
}
