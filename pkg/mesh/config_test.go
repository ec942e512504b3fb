package mesh_test

import (
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

func TestNewServerConfigDefaults(t *testing.T) {
	cfg := mesh.NewServerConfig("ingest")
	if cfg.Service != "ingest" || cfg.ListenAddr != "127.0.0.1:0" || cfg.MetricsAddr != "" ||
		cfg.MaxRecvMsgSize != 4<<20 || cfg.MaxSendMsgSize != 4<<20 || cfg.ShutdownTimeout != 10*time.Second ||
		cfg.TLS.Insecure {
		t.Fatalf("NewServerConfig(%q) = %+v, want the documented defaults", "ingest", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() of the defaults: %v", err)
	}
}

func TestServerConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*mesh.ServerConfig)
		wantErr string
	}{
		{name: "defaults", edit: func(*mesh.ServerConfig) {}},
		{name: "no service", edit: func(c *mesh.ServerConfig) { c.Service = "" }, wantErr: "no service name"},
		{name: "slash in service", edit: func(c *mesh.ServerConfig) { c.Service = "a/b" }, wantErr: "slash"},
		{name: "bad listen", edit: func(c *mesh.ServerConfig) { c.ListenAddr = "nowhere" }, wantErr: "listen address"},
		{name: "wildcard advertise", edit: func(c *mesh.ServerConfig) { c.AdvertiseAddr = "0.0.0.0:8080" }, wantErr: "wildcard"},
		{name: "IPv6 wildcard advertise", edit: func(c *mesh.ServerConfig) { c.AdvertiseAddr = "[::]:8080" }, wantErr: "wildcard"},
		{name: "empty host advertise", edit: func(c *mesh.ServerConfig) { c.AdvertiseAddr = ":8080" }, wantErr: "wildcard"},
		{name: "bare host advertise", edit: func(c *mesh.ServerConfig) { c.AdvertiseAddr = "ingest-0.ingest" }},
		{name: "bad metrics", edit: func(c *mesh.ServerConfig) { c.MetricsAddr = "9090" }, wantErr: "metrics address"},
		{name: "profiling without metrics", edit: func(c *mesh.ServerConfig) { c.Profiling = true }, wantErr: "--metrics-listen"},
		{name: "zero message size", edit: func(c *mesh.ServerConfig) { c.MaxRecvMsgSize = 0 }, wantErr: "receive message size"},
		{name: "zero shutdown timeout", edit: func(c *mesh.ServerConfig) { c.ShutdownTimeout = 0 }, wantErr: "shutdown timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mesh.NewServerConfig("ingest")
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewServerAdvertisedAddress(t *testing.T) {
	tests := []struct {
		name      string
		listen    string
		advertise string
		// want is the advertised host; its port is always the listener's.
		want    string
		wantErr string
	}{
		{name: "specific listen IP", listen: "127.0.0.1:0", want: "127.0.0.1"},
		{name: "wildcard listen without advertise", listen: "0.0.0.0:0", wantErr: "--advertise"},
		{name: "wildcard listen with advertise host", listen: "0.0.0.0:0", advertise: "127.0.0.1", want: "127.0.0.1"},
		{name: "advertise name with port 0", listen: "127.0.0.1:0", advertise: "ingest.bullseye:0", want: "ingest.bullseye"},
		{name: "wildcard advertise", listen: "127.0.0.1:0", advertise: "0.0.0.0:7000", wantErr: "wildcard"},
		{name: "IPv6 wildcard advertise", listen: "127.0.0.1:0", advertise: "[::]:7000", wantErr: "wildcard"},
		{name: "empty advertise host", listen: "127.0.0.1:0", advertise: ":7000", wantErr: "wildcard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("ingest")
			cfg.ListenAddr = tt.listen
			cfg.AdvertiseAddr = tt.advertise
			s, err := mesh.NewServer(cfg)
			if tt.wantErr != "" {
				if err == nil {
					s.Stop()
					t.Fatalf("NewServer succeeded with advertise %q on %s, want an error", tt.advertise, tt.listen)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewServer err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewServer: %v", err)
			}
			defer s.Stop()
			_, port, err := net.SplitHostPort(s.ListenAddr())
			if err != nil {
				t.Fatalf("ListenAddr() = %q: %v", s.ListenAddr(), err)
			}
			if want := tt.want + ":" + port; s.Addr() != want {
				t.Fatalf("Addr() = %q, want %q", s.Addr(), want)
			}
		})
	}
}

func TestRegisterFlagsAndApplyEnv(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*mesh.ServerConfig) bool
	}{
		{
			name: "flags",
			args: []string{"--listen=10.0.0.1:7000", "--advertise=ingest-0:7000", "--metrics-listen=:9090",
				"--tls-cert=c.pem", "--tls-key=k.pem", "--tls-ca=ca.pem", "--tls-server-name=ingest.bullseye",
				"--tls-client-auth", "--max-recv-bytes=1024", "--max-send-bytes=2048", "--shutdown-timeout=3s"},
			want: func(c *mesh.ServerConfig) bool {
				return c.ListenAddr == "10.0.0.1:7000" && c.AdvertiseAddr == "ingest-0:7000" && c.MetricsAddr == ":9090" &&
					c.TLS == mesh.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem", ServerName: "ingest.bullseye", RequireClientCert: true} &&
					c.MaxRecvMsgSize == 1024 && c.MaxSendMsgSize == 2048 && c.ShutdownTimeout == 3*time.Second
			},
		},
		{
			name: "environment",
			env: map[string]string{"BULLSEYE_LISTEN": "10.0.0.2:7000", "BULLSEYE_INSECURE": "true",
				"BULLSEYE_SHUTDOWN_TIMEOUT": "1m", "BULLSEYE_METRICS_LISTEN": "127.0.0.1:9090"},
			want: func(c *mesh.ServerConfig) bool {
				return c.ListenAddr == "10.0.0.2:7000" && c.TLS.Insecure && c.ShutdownTimeout == time.Minute &&
					c.MetricsAddr == "127.0.0.1:9090"
			},
		},
		{
			name: "command line wins over environment",
			args: []string{"--listen=10.0.0.1:7000"},
			env:  map[string]string{"BULLSEYE_LISTEN": "10.0.0.2:7000", "BULLSEYE_ADVERTISE": "ingest-1"},
			want: func(c *mesh.ServerConfig) bool {
				return c.ListenAddr == "10.0.0.1:7000" && c.AdvertiseAddr == "ingest-1"
			},
		},
		{
			name: "defaults stay",
			want: func(c *mesh.ServerConfig) bool { return *c == mesh.NewServerConfig("ingest") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := mesh.NewServerConfig("ingest")
			fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("Parse(%v): %v", tt.args, err)
			}
			if err := mesh.ApplyEnv(fs, "BULLSEYE"); err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			if !tt.want(&cfg) {
				t.Fatalf("after %v and %v: config = %+v", tt.args, tt.env, cfg)
			}
		})
	}
}

func TestApplyEnvReportsBadValues(t *testing.T) {
	t.Setenv("BULLSEYE_SHUTDOWN_TIMEOUT", "soon")
	t.Setenv("BULLSEYE_MAX_RECV_BYTES", "lots")
	cfg := mesh.NewServerConfig("ingest")
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := mesh.ApplyEnv(fs, "BULLSEYE")
	if err == nil || !strings.Contains(err.Error(), "BULLSEYE_SHUTDOWN_TIMEOUT") || !strings.Contains(err.Error(), "BULLSEYE_MAX_RECV_BYTES") {
		t.Fatalf("ApplyEnv = %v, want errors naming both variables", err)
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ prefix, flag, want string }{
		{"BULLSEYE", "etcd-endpoints", "BULLSEYE_ETCD_ENDPOINTS"},
		{"bullseye_", "tls.ca", "BULLSEYE_TLS_CA"},
		{"", "listen", "LISTEN"},
	}
	for _, tt := range tests {
		if got := mesh.EnvName(tt.prefix, tt.flag); got != tt.want {
			t.Errorf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
		}
	}
}
