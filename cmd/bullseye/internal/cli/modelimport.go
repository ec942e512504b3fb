package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// modelImport is what `bullseye models import` was asked for.
type modelImport struct {
	name, format, mapping, description, task, requestID string
}

// formats are the --format values of models import, each the header's format.
var formats = map[string]func(*trainingv1.ImportModelHeader){
	"xgboost-json": func(h *trainingv1.ImportModelHeader) {
		h.Format = &trainingv1.ImportModelHeader_XgboostJson{XgboostJson: &trainingv1.XGBoostJsonFormat{}}
	},
}

// header builds the ImportModel header of the import of a file of size bytes.
func (o *modelImport) header(size int64) (*trainingv1.ImportModelHeader, error) {
	if o.name == "" {
		return nil, usagef("import needs --name: the model name to register the version under")
	}
	if o.mapping == "" {
		return nil, usagef("import needs --mapping: a YAML or JSON file with the input signature (bullseye.model.v1.InputSignature)")
	}
	setFormat, ok := formats[o.format]
	if !ok {
		return nil, usagef("--format %q: want xgboost-json", o.format)
	}
	h := &trainingv1.ImportModelHeader{ModelName: o.name, Description: o.description, SizeBytes: size, RequestId: o.requestID, InputSignature: &modelv1.InputSignature{}}
	setFormat(h)
	if o.task != "" {
		name := "TASK_KIND_" + strings.TrimPrefix(strings.ToUpper(strings.ReplaceAll(o.task, "-", "_")), "TASK_KIND_")
		t, ok := modelv1.TaskKind_value[name]
		if !ok || t == 0 {
			return nil, usagef("--task %q: want binary-classification or regression (unset: the file's objective decides)", o.task)
		}
		h.Task = modelv1.TaskKind(t)
	}
	if err := readYAML(o.mapping, h.InputSignature); err != nil {
		return nil, fmt.Errorf("reading the mapping: %w", err)
	}
	return h, nil
}

// runModelImport streams the model file at path to TrainingService.ImportModel in 1 MiB
// chunks and prints the registered version. --timeout bounds each message: a send that
// waits longer, or an answer that takes longer after the last chunk, ends the call.
func runModelImport(ctx context.Context, env *Env, o *modelImport, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := o.header(st.Size())
	if err != nil {
		return err
	}
	conn, err := env.dial(ctx, "training")
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(env.timeout, func() { timedOut.Store(true); cancel() })
	defer watchdog.Stop()
	stream, err := trainingv1.NewTrainingServiceClient(conn).ImportModel(ctx)
	if err != nil {
		return err
	}
	send := func(m *trainingv1.ImportModelRequest) error {
		watchdog.Reset(env.timeout)
		return stream.Send(m)
	}
	err = send(&trainingv1.ImportModelRequest{Kind: &trainingv1.ImportModelRequest_Header{Header: h}})
	buf := make([]byte, chunkSize)
	for err == nil {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			err = send(&trainingv1.ImportModelRequest{Kind: &trainingv1.ImportModelRequest_Chunk{Chunk: buf[:n]}})
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading %s: %w", path, rerr)
		}
	}
	// A send fails with io.EOF when the server has answered already: its status comes with
	// CloseAndRecv.
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	watchdog.Reset(env.timeout)
	resp, err := stream.CloseAndRecv()
	if err != nil {
		if timedOut.Load() {
			return fmt.Errorf("no answer within --timeout %v: %w", env.timeout, err)
		}
		return err
	}
	if env.output == "json" {
		return env.printJSON(resp)
	}
	v := resp.GetModelVersion()
	var inputs []string
	for _, in := range v.GetInputs() {
		inputs = append(inputs, in.GetName())
	}
	verb := "imported"
	if !resp.GetCreated() {
		verb = "already imported (--request-id " + o.requestID + ")"
	}
	fmt.Fprintf(env.Stdout, "%s %s as %s version %d: %s, %s\n", verb, filepath.Base(path), v.GetModelName(), v.GetVersion(),
		strings.TrimPrefix(v.GetFamily().String(), "MODEL_FAMILY_"), strings.TrimPrefix(v.GetTask().String(), "TASK_KIND_"))
	fmt.Fprintf(env.Stdout, "inputs from feature set %s version %d: %s\n", v.GetLineage().GetFeatureSet(), v.GetLineage().GetFeatureSetVersion(), strings.Join(inputs, ", "))
	fmt.Fprintf(env.Stdout, "serve it with: bullseye promote %s --version %d\n", v.GetModelName(), v.GetVersion())
	return nil
}
