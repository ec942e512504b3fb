package cli

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
)

var modelsCommand = Command{
	Name: "models",
	Summary: "List registered models, show one version (family, metrics, leaderboard, lineage), or import a model fitted elsewhere " +
		"(an XGBoost JSON model) as a new version, its features mapped to a feature set's columns.",
	Usage: "list | get NAME[@VERSION|@ALIAS] | import --name NAME --mapping MAPPING.yaml [--format xgboost-json] MODEL_FILE",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		var imp modelImport
		fs.StringVar(&imp.name, "name", "", "import: the model name the version is registered under")
		fs.StringVar(&imp.format, "format", "xgboost-json", "import: the model file's format (xgboost-json: Booster.save_model of a .json file)")
		fs.StringVar(&imp.mapping, "mapping", "", "import: YAML or JSON file with the input signature (bullseye.model.v1.InputSignature): the feature set, and the column each model feature reads")
		fs.StringVar(&imp.description, "description", "", "import: a description stored on the version")
		fs.StringVar(&imp.task, "task", "", "import: binary-classification or regression (default: what the file's objective implies)")
		fs.StringVar(&imp.requestID, "request-id", "", "import: an id that makes the import idempotent: a repeat with the same id returns the version the first registered")
		if err := parse(env, fs, args, 1, 2); err != nil {
			return err
		}
		if fs.Arg(0) == "import" {
			if fs.NArg() != 2 {
				return usagef("import takes the model file")
			}
			return runModelImport(ctx, env, &imp, fs.Arg(1))
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := trainingv1.NewTrainingServiceClient(conn)
		cctx, cancel := env.call(ctx)
		defer cancel()
		switch fs.Arg(0) {
		case "list":
			resp, err := client.ListModels(cctx, &trainingv1.ListModelsRequest{})
			if err != nil {
				return err
			}
			if env.output == "json" {
				return env.printJSON(resp)
			}
			for _, m := range resp.GetModels() {
				fmt.Fprintf(env.Stdout, "%-24s %-28s latest v%-3d live %-12s aliases %s\n", m.GetName(),
					strings.TrimPrefix(m.GetTask().String(), "TASK_KIND_"), m.GetLatestVersion(), split(m.GetLive()), aliases(m.GetAliases()))
			}
			return nil
		case "get":
			if fs.NArg() != 2 {
				return usagef("get takes a model: NAME, NAME@VERSION or NAME@ALIAS")
			}
			ref, err := parseModelRef(fs.Arg(1))
			if err != nil {
				return err
			}
			if ref.GetSelector() == nil {
				// A bare name shows the live version, or the latest one when
				// none is live yet.
				if latest, ok, err := latestUnpromoted(cctx, client, ref.GetName()); err != nil {
					return err
				} else if ok {
					ref.Selector = &commonv1.ModelRef_Version{Version: latest}
				}
			}
			resp, err := client.GetModel(cctx, &trainingv1.GetModelRequest{Model: ref})
			if err != nil {
				return err
			}
			if env.output == "json" {
				return env.printJSON(resp)
			}
			v := resp.GetModelVersion()
			fmt.Fprintf(env.Stdout, "%s version %d: %s, %s\n", v.GetModelName(), v.GetVersion(),
				strings.TrimPrefix(v.GetFamily().String(), "MODEL_FAMILY_"), strings.TrimPrefix(v.GetTask().String(), "TASK_KIND_"))
			fmt.Fprintf(env.Stdout, "selected by %s; converged %v\n", v.GetSelectionMetric(), v.GetConverged())
			fmt.Fprintln(env.Stdout, "test metrics:")
			for _, m := range v.GetTestMetrics() {
				fmt.Fprintf(env.Stdout, "  %-20s %.4f\n", m.GetName(), m.GetValue())
			}
			if p := v.GetClvParameters(); p != nil {
				fmt.Fprint(env.Stdout, clvParameters(p))
			}
			if len(v.GetLeaderboard()) > 0 {
				fmt.Fprint(env.Stdout, leaderboard(v.GetLeaderboard()))
			}
			return nil
		}
		return usagef("unknown models action %q: want list, get or import", fs.Arg(0))
	},
}

var promoteCommand = Command{
	Name:    "promote",
	Summary: "Make a model version live (or split traffic between versions, or set an alias). Refused when the version is worse than the live one on the selection metric, unless --force.",
	Usage:   "NAME --version N [--split V=W,...] [--shadow V,...] [--alias NAME] [--force]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		version := fs.Int64("version", 0, "the version that takes all live traffic")
		splitFlag := fs.String("split", "", "live traffic split instead of --version, e.g. 3=90,4=10")
		shadow := fs.String("shadow", "", "versions scored in the shadow of the live ones, e.g. 5,6")
		alias := fs.String("alias", "", "set this alias to --version instead of changing live traffic")
		force := fs.Bool("force", false, "promote even if the quality gate refuses")
		reason := fs.String("reason", "", "why, for the audit trail")
		wait := fs.Duration("wait", time.Minute, "wait this long for serving to load the new live versions (0: don't wait; not with --addr)")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		name := fs.Arg(0)
		req := &trainingv1.PromoteModelRequest{ModelName: name, Force: *force, Reason: *reason}
		switch {
		case *alias != "":
			if *version <= 0 {
				return usagef("--alias needs --version")
			}
			req.SetAliases = map[string]int64{*alias: *version}
		case *splitFlag != "":
			s, err := parseSplit(*splitFlag)
			if err != nil {
				return err
			}
			req.Live = s
		case *version > 0:
			req.Live = &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: *version, Weight: 100}}}
		case *shadow == "":
			return usagef("say what to promote: --version, --split, --alias or --shadow")
		}
		if *shadow != "" {
			sv := &modelv1.ShadowVersions{}
			for _, f := range strings.Split(*shadow, ",") {
				v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
				if err != nil || v <= 0 {
					return usagef("--shadow %q: want version numbers such as 5,6", *shadow)
				}
				sv.Versions = append(sv.Versions, v)
			}
			req.Shadow = sv
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := trainingv1.NewTrainingServiceClient(conn)
		cctx, cancel := env.call(ctx)
		defer cancel()
		// Compare-and-set on the revision just read: a concurrent change
		// makes this call fail rather than be overwritten.
		cur, err := registeredModel(cctx, client, name)
		if err != nil {
			return err
		}
		req.ExpectedRevision = cur.GetRevision()
		resp, err := client.PromoteModel(cctx, req)
		if err != nil {
			return err
		}
		if env.output == "json" {
			return env.printJSON(resp)
		}
		m := resp.GetModel()
		fmt.Fprintf(env.Stdout, "%s: live %s, aliases %s (revision %d)\n", m.GetName(), split(m.GetLive()), aliases(m.GetAliases()), m.GetRevision())
		if *wait > 0 && env.addr == "" && req.Live != nil {
			if err := waitServed(ctx, env, m, *wait); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "serving has loaded %s: live %s\n", m.GetName(), split(m.GetLive()))
		}
		return nil
	},
}

// waitServed waits until serving reports every live version of m loaded
// (AVAILABLE) at m's registry revision or later, failing at once when a
// version failed to load.
func waitServed(ctx context.Context, env *Env, m *modelv1.RegisteredModel, timeout time.Duration) error {
	conn, err := env.dial(ctx, "serving")
	if err != nil {
		return err
	}
	defer conn.Close()
	client := servingv1.NewPredictionServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		resp, err := client.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: &commonv1.ModelRef{Name: m.GetName()}})
		if err == nil && resp.GetModel().GetRegistryRevision() >= m.GetRevision() {
			loaded := true
			for _, want := range m.GetLive().GetVersions() {
				state := servingv1.ModelState_MODEL_STATE_UNSPECIFIED
				for _, v := range resp.GetModel().GetVersions() {
					if v.GetVersion() == want.GetVersion() {
						state = v.GetState()
						if state == servingv1.ModelState_MODEL_STATE_FAILED {
							return fmt.Errorf("serving failed to load %s version %d: %s", m.GetName(), v.GetVersion(), v.GetError().GetDescription())
						}
					}
				}
				loaded = loaded && state == servingv1.ModelState_MODEL_STATE_AVAILABLE
			}
			if loaded {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serving has not loaded %s within %v (last answer: %v)", m.GetName(), timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registeredModel returns the registered model named name.
func registeredModel(ctx context.Context, client trainingv1.TrainingServiceClient, name string) (*modelv1.RegisteredModel, error) {
	resp, err := client.ListModels(ctx, &trainingv1.ListModelsRequest{NamePrefix: name})
	if err != nil {
		return nil, err
	}
	for _, m := range resp.GetModels() {
		if m.GetName() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no model named %q is registered: train one first (bullseye train)", name)
}

// latestUnpromoted returns the latest version of a model that has no live
// version, and false when the model has live versions or does not exist.
func latestUnpromoted(ctx context.Context, client trainingv1.TrainingServiceClient, name string) (int64, bool, error) {
	resp, err := client.ListModels(ctx, &trainingv1.ListModelsRequest{NamePrefix: name})
	if err != nil {
		return 0, false, err
	}
	for _, m := range resp.GetModels() {
		if m.GetName() == name && len(m.GetLive().GetVersions()) == 0 && m.GetLatestVersion() > 0 {
			return m.GetLatestVersion(), true, nil
		}
	}
	return 0, false, nil
}

func parseModelRef(s string) (*commonv1.ModelRef, error) {
	ref := registry.ParseRef(s)
	if ref.GetName() == "" {
		return nil, usagef("model %q: want NAME, NAME@VERSION or NAME@ALIAS", s)
	}
	return ref, nil
}

func parseSplit(s string) (*modelv1.TrafficSplit, error) {
	out := &modelv1.TrafficSplit{}
	for _, part := range strings.Split(s, ",") {
		v, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		version, err1 := strconv.ParseInt(v, 10, 64)
		weight, err2 := strconv.ParseUint(w, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, usagef("--split %q: want VERSION=WEIGHT pairs such as 3=90,4=10", s)
		}
		out.Versions = append(out.Versions, &modelv1.VersionWeight{Version: version, Weight: uint32(weight)})
	}
	return out, nil
}

func split(s *modelv1.TrafficSplit) string {
	if len(s.GetVersions()) == 0 {
		return "none"
	}
	var parts []string
	for _, v := range s.GetVersions() {
		parts = append(parts, fmt.Sprintf("v%d=%d", v.GetVersion(), v.GetWeight()))
	}
	return strings.Join(parts, ",")
}

func aliases(a map[string]int64) string {
	if len(a) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range a {
		parts = append(parts, fmt.Sprintf("%s=v%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// clvParameters shows a customer lifetime value model's fitted parameters with their
// standard errors.
func clvParameters(p *modelv1.ClvParameters) string {
	var b strings.Builder
	row := func(name string, v, se float64) { fmt.Fprintf(&b, "  %-6s %12.6g ± %.4g\n", name, v, se) }
	bg := p.GetBgNbd()
	fmt.Fprintf(&b, "BG/NBD in units of %g days (%d customers, log-likelihood %.4f):\n", p.GetTimeUnitDays(), bg.GetCustomers(), bg.GetLogLikelihood())
	row("r", bg.GetR(), bg.GetRStdErr())
	row("alpha", bg.GetAlpha(), bg.GetAlphaStdErr())
	row("a", bg.GetA(), bg.GetAStdErr())
	row("b", bg.GetB(), bg.GetBStdErr())
	if gg := p.GetGammaGamma(); gg != nil {
		fmt.Fprintf(&b, "Gamma-Gamma (%d customers, log-likelihood %.4f):\n", gg.GetCustomers(), gg.GetLogLikelihood())
		row("p", gg.GetP(), gg.GetPStdErr())
		row("q", gg.GetQ(), gg.GetQStdErr())
		row("gamma", gg.GetGamma(), gg.GetGammaStdErr())
	} else {
		fmt.Fprintln(&b, "Gamma-Gamma not fitted: no expected order value or CLV")
	}
	fmt.Fprintf(&b, "horizon %d months of %g time units, monthly discount %g\n", p.GetHorizonMonths(), p.GetUnitsPerMonth(), p.GetMonthlyDiscount())
	fmt.Fprintf(&b, "inputs: frequency %s, recency %s, age %s, monetary %s\n", p.GetInputs().GetFrequency(), p.GetInputs().GetRecencyDays(),
		p.GetInputs().GetAgeDays(), p.GetInputs().GetMonetary())
	return b.String()
}
