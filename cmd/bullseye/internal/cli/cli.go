// Package cli implements Bullseye's command-line client: import files,
// apply feature sets, train and watch jobs, inspect and promote models,
// predict, recommend and forget customers. It finds the mesh through etcd
// or takes a service's direct address.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/yamlpb"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// Env is what every command shares: where the mesh is, how to talk to it,
// and where output goes.
type Env struct {
	Stdout, Stderr io.Writer

	etcd    string
	addr    string
	output  string
	timeout time.Duration
	tls     mesh.TLSConfig

	etcdClient *clientv3.Client
}

// Command is one `bullseye` subcommand.
type Command struct {
	// Name is the word that selects it, e.g. "import".
	Name string
	// Summary is one line for the usage listing.
	Summary string
	// Usage shows its arguments, e.g. "--mapping FILE.yaml DATA_FILE".
	Usage string
	// Run parses args with fs (which already has the shared flags) and runs.
	Run func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
}

// Commands lists the client commands in the order the usage shows them.
var Commands = []Command{
	importCommand,
	featureSetCommand,
	trainCommand,
	watchCommand,
	modelsCommand,
	evaluateCommand,
	promoteCommand,
	predictCommand,
	recommendCommand,
	forgetCommand,
	reportCommand,
	audienceCommand,
	verifyCommand,
}

// Find returns the command named name.
func Find(name string) (Command, bool) {
	for _, c := range Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Main runs one client command and returns the process exit code: 0, 1 on
// a failed call, 2 on a usage mistake.
func Main(ctx context.Context, c Command, args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr}
	fs := flag.NewFlagSet("bullseye "+c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&env.etcd, "etcd", "http://127.0.0.1:2379", "comma-separated etcd endpoints where the mesh registers")
	fs.StringVar(&env.addr, "addr", "", "the service's address, instead of finding it through etcd")
	fs.StringVar(&env.output, "output", "text", `output format: "text" for people, "json" for scripts`)
	fs.DurationVar(&env.timeout, "timeout", 30*time.Second, "deadline of each call (streams: of each message)")
	fs.BoolVar(&env.tls.Insecure, "insecure", true, "plaintext gRPC (the development mesh); false requires --tls-ca")
	fs.StringVar(&env.tls.CAFile, "tls-ca", "", "CA certificate that signed the services' certificates")
	fs.StringVar(&env.tls.CertFile, "tls-cert", "", "client certificate for mutual TLS")
	fs.StringVar(&env.tls.KeyFile, "tls-key", "", "client key for mutual TLS")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bullseye %s [flags] %s\n\n%s\n\nFlags:\n", c.Name, c.Usage, c.Summary)
		fs.PrintDefaults()
	}
	err := c.Run(ctx, env, fs, args)
	if env.etcdClient != nil {
		env.etcdClient.Close()
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bullseye %s: %v\n", c.Name, err)
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "bullseye %s: %s\n", c.Name, describe(err))
		return 1
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parse parses the flags, which may come before or after the positional
// arguments, and checks the number of positional arguments.
func parse(env *Env, fs *flag.FlagSet, args []string, minArgs, maxArgs int) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	// "--" ends the flags: fs.Args() is then the positional arguments.
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return usageError{err.Error()}
	}
	if err := mesh.ApplyEnv(fs, service.EnvPrefix); err != nil {
		return usageError{err.Error()}
	}
	if n := fs.NArg(); n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		return usagef("got %d arguments, want %s", n, argCount(minArgs, maxArgs))
	}
	if env.output != "text" && env.output != "json" {
		return usagef(`--output %q: want "text" or "json"`, env.output)
	}
	return nil
}

func argCount(minArgs, maxArgs int) string {
	switch {
	case minArgs == maxArgs:
		return fmt.Sprint(minArgs)
	case maxArgs < 0:
		return fmt.Sprintf("at least %d", minArgs)
	}
	return fmt.Sprintf("%d to %d", minArgs, maxArgs)
}

// dial connects to a service: at --addr when given, else through etcd.
func (env *Env) dial(ctx context.Context, service string) (*grpc.ClientConn, error) {
	tlsCfg := env.tls.ForService(service)
	if env.addr != "" {
		return mesh.DialAddr(ctx, env.addr, tlsCfg)
	}
	if env.etcdClient == nil {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   strings.Split(env.etcd, ","),
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return nil, fmt.Errorf("connecting to etcd at %s (set --etcd, or --addr for a direct address): %w", env.etcd, err)
		}
		env.etcdClient = cli
	}
	d := mesh.NewDiscovery(env.etcdClient)
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	eps, err := d.Endpoints(lctx, service)
	if err != nil {
		return nil, fmt.Errorf("looking up %s in etcd at %s (is the mesh running? set --etcd, or --addr): %w", service, env.etcd, err)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("no %s service is registered in etcd at %s: start the mesh (make dev) or pass --addr", service, env.etcd)
	}
	return d.Dial(ctx, service, mesh.WithTLS(tlsCfg))
}

// call bounds one call by --timeout.
func (env *Env) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, env.timeout)
}

// printJSON writes a message as protobuf JSON (for --output json).
func (env *Env) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: false, EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, string(b))
	return err
}

// readYAML reads a YAML (or JSON) file into a message, using the message's
// protobuf JSON field names; a mistake (an unknown field, a value of the
// wrong type) is an error naming the file, the line and column, and the
// field's path.
func readYAML(path string, m proto.Message) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yamlpb.Unmarshal(path, data, m)
}

// describe renders a call's error for people: the status message, and the
// field violations of a bad request with what to fix.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	var b strings.Builder
	switch st.Code() {
	case codes.Unavailable:
		fmt.Fprintf(&b, "the service is unavailable (%s); is the mesh running?", st.Message())
	case codes.DeadlineExceeded:
		fmt.Fprintf(&b, "no answer in time (%s); raise --timeout", st.Message())
	default:
		fmt.Fprintf(&b, "%s: %s", st.Code(), st.Message())
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  %s: %s", v.GetField(), v.GetDescription())
			}
		}
	}
	return b.String()
}
