package bulwarktest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// ownContainers lists the containers of the kit labelled with pid.
func ownContainers(t *testing.T, e *engine, pid int) []string {
	t.Helper()
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelKit+"=1", LabelPID+"="+strconv.Itoa(pid)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range res.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestContainersRemovedAtCleanup(t *testing.T) {
	RequireDocker(t)
	e, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	before := len(ownContainers(t, e, os.Getpid()))
	t.Run("start", func(t *testing.T) {
		srv := StartRedis(t, WithBackend(Container))
		srv.Kill()
		srv.Restart() // a second container for the same server
		StartCluster(t, WithBackend(Container), WithMasters(1))
		if n := len(ownContainers(t, e, os.Getpid())); n < before+2 {
			t.Fatalf("%d containers of this test binary while the servers run, want at least %d", n, before+2)
		}
	})
	if ids := ownContainers(t, e, os.Getpid()); len(ids) != before {
		t.Fatalf("containers left after the test's cleanup: %d, want %d (%v)", len(ids), before, ids)
	}
}

func TestSweepRemovesContainersOfDeadBinaries(t *testing.T) {
	RequireDocker(t)
	e, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.ensureImage(ctx, LocalImage); err != nil {
		t.Fatal(err)
	}
	// A process id that no longer runs: a child that has exited.
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid
	labels := kitLabels()
	labels[LabelPID] = strconv.Itoa(dead)
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{Image: LocalImage, Cmd: []string{"redis-server", "--port", "0"}, Labels: labels},
		Logger:           quietLogger{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = testcontainers.TerminateContainer(ctr) })
	if n := len(ownContainers(t, e, dead)); n != 1 {
		t.Fatalf("%d containers labelled with the dead pid, want 1", n)
	}
	e.sweep(ctx)
	if n := len(ownContainers(t, e, dead)); n != 0 {
		t.Fatalf("%d containers of a dead test binary left after sweep, want 0", n)
	}
}
