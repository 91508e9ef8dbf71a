package bulwarktest

import (
	"context"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestBuildImage(t *testing.T) {
	RequireDocker(t)
	ctx := context.Background()
	out, err := BuildImage(ctx)
	if err != nil {
		t.Fatalf("BuildImage: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Successfully tagged "+LocalImage) {
		t.Fatalf("build output does not tag %s:\n%s", LocalImage, out)
	}
	ok, err := ImageExists(ctx, LocalImage)
	if err != nil || !ok {
		t.Fatalf("ImageExists(%s) = %v, %v after the build", LocalImage, ok, err)
	}
	if ok, err := ImageExists(ctx, "bulwarktest/no-such-image:none"); err != nil || ok {
		t.Fatalf("ImageExists of a missing image = %v, %v", ok, err)
	}
	srv := StartRedis(t, WithBackend(Container))
	if v := srv.Do(t, "INFO", "server"); !strings.Contains(v.(string), "redis_version:") {
		t.Fatalf("INFO server from the built image: %v", v)
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
