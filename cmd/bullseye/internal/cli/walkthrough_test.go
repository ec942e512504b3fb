package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeGrpcurl returns the grpcurl calls of the README's walkthrough ("Calling a service
// with grpcurl"), as the arguments after bin/grpcurl: the shell block's commands, split as
// the shell splits them (single quotes, which may span lines; # comments).
func readmeGrpcurl(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Calling a service with grpcurl")
	if !ok {
		t.Fatal("the README has no grpcurl walkthrough")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatal("the README's grpcurl walkthrough has no shell block")
	}
	var calls [][]string
	for _, cmd := range shellCommands(t, block) {
		if len(cmd) == 0 || cmd[0] != "bin/grpcurl" {
			t.Fatalf("the walkthrough runs %q, not bin/grpcurl", cmd)
		}
		calls = append(calls, cmd[1:])
	}
	if len(calls) == 0 {
		t.Fatal("the README's grpcurl walkthrough runs nothing")
	}
	return calls
}

// shellCommands splits a shell script of simple commands into their words.
func shellCommands(t *testing.T, script string) [][]string {
	t.Helper()
	var cmds [][]string
	var cmd []string
	var word strings.Builder
	inWord, quoted, comment := false, false, false
	end := func() {
		if inWord {
			cmd = append(cmd, word.String())
			word.Reset()
			inWord = false
		}
	}
	for _, r := range script {
		switch {
		case comment:
			comment = r != '\n'
		case quoted:
			if r == '\'' {
				quoted = false
			} else {
				word.WriteRune(r)
			}
		case r == '\'':
			quoted, inWord = true, true
		case r == '#' && !inWord:
			comment = true
		case r == ' ' || r == '\t':
			end()
		case r == '\n':
			end()
			if len(cmd) > 0 {
				cmds = append(cmds, cmd)
				cmd = nil
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatal("the walkthrough has an unclosed quote")
	}
	end()
	if len(cmd) > 0 {
		cmds = append(cmds, cmd)
	}
	return cmds
}

func TestShellCommands(t *testing.T) {
	got := shellCommands(t, "# a comment\nbin/grpcurl -plaintext a list\nbin/grpcurl -d '{\n  \"x\": 1\n}' a m/M\n")
	want := [][]string{{"bin/grpcurl", "-plaintext", "a", "list"}, {"bin/grpcurl", "-d", "{\n  \"x\": 1\n}", "a", "m/M"}}
	if len(got) != len(want) {
		t.Fatalf("shellCommands = %q, want %q", got, want)
	}
	for i := range want {
		if strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("command %d = %q, want %q", i, got[i], want[i])
		}
	}
}
