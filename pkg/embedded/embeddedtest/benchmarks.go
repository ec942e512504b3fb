package embeddedtest

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// WriteBenchmarks replaces the section name of the benchmarks file at path (BENCHMARKS.md)
// with table, headed by the command that measured it and this machine's description, as
// scripts/bench-train.py writes its own; a file or section that is absent is added.
func WriteBenchmarks(path, name, command, table string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	body := fmt.Sprintf("%s\n## %s\n\nMeasured %s on %s.\n\n```\n%s\n```\n%s\n", begin, command,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine(), strings.TrimRight(table, "\n"), end)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\nWritten by the benchmarks themselves (make bench-*).\n\n"
	}
	i, j := strings.Index(text, begin), strings.Index(text, end)
	switch {
	case i >= 0 && j > i:
		text = text[:i] + body + strings.TrimPrefix(text[j+len(end):], "\n")
	default:
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "\n" + body
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// Machine describes this machine as the benchmarks' tables state it: CPU model, cores,
// kernel and Go version.
func Machine() string {
	cpu := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := runtime.GOOS
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s", cpu, runtime.NumCPU(), kernel, runtime.Version())
}
