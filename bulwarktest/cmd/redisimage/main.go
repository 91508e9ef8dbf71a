// Command redisimage builds the Redis image the bulwarktest kit runs in
// containers (bulwarktest.LocalImage) from this machine's redis-server
// binary and its shared libraries, without a registry:
//
//	go run github.com/bulwark-go/bulwark/bulwarktest/cmd/redisimage
//
// With -if-missing it does nothing when the image exists. The kit builds the
// image by itself the first time a test needs it; this command does it ahead
// of time (.ci/docker-setup.sh runs it).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bulwark-go/bulwark/bulwarktest"
)

func main() {
	ifMissing := flag.Bool("if-missing", false, "build only when the image does not exist")
	verbose := flag.Bool("v", false, "print the build output")
	flag.Parse()
	ctx := context.Background()
	if *ifMissing {
		ok, err := bulwarktest.ImageExists(ctx, bulwarktest.LocalImage)
		if err != nil {
			fmt.Fprintln(os.Stderr, "redisimage:", err)
			os.Exit(1)
		}
		if ok {
			fmt.Println("redisimage:", bulwarktest.LocalImage, "exists")
			return
		}
	}
	out, err := bulwarktest.BuildImage(ctx)
	if *verbose || err != nil {
		fmt.Print(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisimage:", err)
		os.Exit(1)
	}
	fmt.Println("redisimage: built", bulwarktest.LocalImage)
}
