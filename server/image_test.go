package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCommentsNameTheRuntimeImage: the comments name the image the
// Dockerfile's last stage is built on, not another kind of base image.
func TestCommentsNameTheRuntimeImage(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(dockerfile), -1)
	image := froms[len(froms)-1][1]
	if image != "scratch" {
		t.Fatalf("the runtime image is %s: update this test's list of other images", image)
	}
	sources, _ := filepath.Glob("*.go")
	for _, name := range sources {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"distroless", "alpine", "busybox"} {
			if strings.Contains(strings.ToLower(string(src)), other) && name != "image_test.go" {
				t.Errorf("%s mentions %s; the image is %s", name, other, image)
			}
		}
	}
}
