package embeddedtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Binaries finds or builds the Bullseye binaries (bullseye-feature, ...) that one test
// binary's tests run, each once. The zero value is ready to use; Remove deletes what it
// built.
type Binaries struct {
	mu    sync.Mutex
	dir   string
	paths map[string]string
}

// Path returns the path of binary name: $BULLSEYE_BIN/name when that exists (make test builds
// the binaries there first), else the one built on first use from this checkout's sources,
// cmd/name or services/*/cmd/name below the folder of go.work.
func (b *Binaries) Path(name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.paths[name]; ok {
		return p, nil
	}
	p, err := b.find(name)
	if err != nil {
		return "", err
	}
	if b.paths == nil {
		b.paths = map[string]string{}
	}
	b.paths[name] = p
	return p, nil
}

func (b *Binaries) find(name string) (string, error) {
	if dir := os.Getenv("BULLSEYE_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p)
		}
	}
	src, err := source(name)
	if err != nil {
		return "", err
	}
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "bullseye-test-bin-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(b.dir, name)
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir = src
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building %s in %s: %w", name, src, err)
	}
	return out, nil
}

// source returns the folder of binary name's main package.
func source(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for root := wd; root != filepath.Dir(root); root = filepath.Dir(root) {
		if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
			continue
		}
		dirs, err := filepath.Glob(filepath.Join(root, "services", "*", "cmd", name))
		if err != nil {
			return "", err
		}
		dirs = append(dirs, filepath.Join(root, "cmd", name))
		for _, d := range dirs {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d, nil
			}
		}
		return "", fmt.Errorf("no sources of %s in %s/cmd or %s/services/*/cmd", name, root, root)
	}
	return "", errors.New("no go.work above " + wd + ": set BULLSEYE_BIN to a folder holding the binaries (make build)")
}

// Remove deletes the binaries Path built.
func (b *Binaries) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
	b.dir, b.paths = "", nil
}
