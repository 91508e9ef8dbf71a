package bulwarktest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// LocalImage is the image the Container backend runs unless WithImage names
// another: a root filesystem holding only this machine's redis-server and
// the shared libraries it links, built by BuildImage (or by the kit itself
// the first time it needs the image).
const LocalImage = "bulwarktest/redis:local"

// ImageBuildTimeout bounds BuildImage.
const ImageBuildTimeout = 2 * time.Minute

// BuildImage builds LocalImage on the Docker engine from the redis-server
// binary (EnvServerPath, else redis-server on PATH) and the shared libraries
// ldd lists for it, as a Dockerfile FROM scratch: nothing is pulled. It
// replaces an existing image of that name and returns the build's output.
func BuildImage(ctx context.Context) (string, error) {
	e, err := sharedEngine()
	if err != nil {
		return "", err
	}
	return e.buildImage(ctx, LocalImage)
}

var imageOnce struct {
	mu    sync.Mutex
	ready map[string]bool
}

// ensureImage makes sure the image exists: LocalImage is built when it is
// missing; any other image is left to testcontainers-go, which pulls it.
func (e *engine) ensureImage(ctx context.Context, image string) error {
	if image != LocalImage {
		return nil
	}
	imageOnce.mu.Lock()
	defer imageOnce.mu.Unlock()
	if imageOnce.ready[image] {
		return nil
	}
	if _, err := e.cli.ImageInspect(ctx, image); err != nil {
		if _, err := e.buildImage(ctx, image); err != nil {
			return fmt.Errorf("build %s: %w", image, err)
		}
	}
	if imageOnce.ready == nil {
		imageOnce.ready = make(map[string]bool)
	}
	imageOnce.ready[image] = true
	return nil
}

func (e *engine) buildImage(ctx context.Context, tag string) (string, error) {
	bin, err := serverBinary()
	if err != nil {
		return "", fmt.Errorf("%w (the image is built from the redis-server binary: install redis-server, or pass WithImage)", err)
	}
	// The file is stored as redis-server: the binary picks its mode from
	// the name it runs under.
	return e.imageFromBinary(ctx, tag, bin, "/usr/bin/redis-server",
		"ENV PATH=/usr/local/bin:/usr/bin:/bin", `CMD ["redis-server"]`)
}

// ImageFromBinary builds the image tag on the Docker engine FROM scratch,
// holding the host's executable bin at dest (an absolute path), the shared
// libraries ldd lists for it at their own paths, an empty /tmp (mode 1777),
// and then the Dockerfile instructions given (ENV, ENTRYPOINT, CMD, USER,
// ...). Nothing is pulled. It is how the kit builds LocalImage, and works
// for any dynamically or statically linked program, e.g.
//
//	bulwarktest.ImageFromBinary(ctx, "local/prometheus", "/usr/bin/prometheus", "/bin/prometheus",
//		`ENTRYPOINT ["/bin/prometheus"]`)
//
// It returns the build's output.
func ImageFromBinary(ctx context.Context, tag, bin, dest string, instructions ...string) (string, error) {
	e, err := sharedEngine()
	if err != nil {
		return "", err
	}
	return e.imageFromBinary(ctx, tag, bin, dest, instructions...)
}

func (e *engine) imageFromBinary(ctx context.Context, tag, bin, dest string, instructions ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ImageBuildTimeout)
	defer cancel()
	if !filepath.IsAbs(dest) {
		return "", fmt.Errorf("destination %q is not an absolute path", dest)
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return "", err
	}
	files, err := sharedLibraries(real)
	if err != nil {
		return "", err
	}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nLABEL " + LabelKit + "=\"1\"\n" + strings.Join(instructions, "\n") + "\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := addFile(tw, "Dockerfile", []byte(dockerfile), 0o644); err != nil {
		return "", err
	}
	if err := addHostFile(tw, real, "rootfs"+dest); err != nil {
		return "", err
	}
	for _, f := range files {
		if err := addHostFile(tw, f, "rootfs"+f); err != nil {
			return "", err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	var oldID string
	if old, err := e.cli.ImageInspect(ctx, tag); err == nil {
		oldID = old.ID
	}
	res, err := e.cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	out, err := readBuildOutput(res.Body)
	_ = res.Body.Close()
	if err == nil && oldID != "" {
		// The image the tag named before is left without a name: remove it
		// unless a container still uses it.
		if now, ierr := e.cli.ImageInspect(ctx, tag); ierr == nil && now.ID != oldID {
			_, _ = e.cli.ImageRemove(ctx, oldID, client.ImageRemoveOptions{})
		}
	}
	return out, err
}

// readBuildOutput collects the build's JSON message stream and returns the
// first error it reports.
func readBuildOutput(r io.Reader) (string, error) {
	var out strings.Builder
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return out.String(), nil
		} else if err != nil {
			return out.String(), fmt.Errorf("reading docker build output: %w", err)
		}
		out.WriteString(msg.Stream)
		if msg.Error != "" {
			return out.String(), fmt.Errorf("docker build: %s", msg.Error)
		}
	}
}

// serverBinary returns the real file of the redis-server binary, resolving
// symbolic links (Debian's redis-server is a link to redis-check-rdb; the
// program picks its mode from the name it was run as, so the image stores
// the file as redis-server).
func serverBinary() (string, error) {
	p := os.Getenv(EnvServerPath)
	if p == "" {
		var err error
		if p, err = exec.LookPath("redis-server"); err != nil {
			return "", fmt.Errorf("no redis-server binary: %w", err)
		}
	}
	return filepath.EvalSymlinks(p)
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/[^\s]+)\s+\(0x`)

// sharedLibraries lists the absolute paths of the libraries (and the
// dynamic loader) bin links, as ldd prints them. A static binary has none.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: a library is missing: %s", bin, strings.TrimSpace(line))
		}
		if m := lddLine.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
		}
	}
	libs := make([]string, 0, len(seen))
	for l := range seen {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}

func addFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// addHostFile stores the content of the host file src (links followed) as
// name, keeping its permission bits.
func addHostFile(tw *tar.Writer, src, name string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return addFile(tw, name, data, int64(fi.Mode().Perm()))
}

// ImageExists reports whether the Docker engine has the image.
func ImageExists(ctx context.Context, image string) (bool, error) {
	e, err := sharedEngine()
	if err != nil {
		return false, err
	}
	if _, err := e.cli.ImageInspect(ctx, image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
