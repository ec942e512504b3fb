package server

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/training/internal/jobs"
)

// The checks every request passes at the door, before it reaches the job store, the
// registry or a log line: the shared bounds of pkg/fault, the forms of job ids, model names
// and aliases, known enum values, and page tokens this server issued.

// Kinds of page tokens (fault.PageToken), so that a token of one list is no token of another.
const (
	jobsToken   = "jobs"
	modelsToken = "models"
)

// nameRule is the rule of model names and aliases, as the registry states it.
const nameRule = "must be 1 to 63 characters of [a-z0-9-], starting with a letter"

// checkJobID adds a violation when id is not a job id.
func checkJobID(v *fault.Violations, field, id string) {
	if id == "" {
		v.Add(field, "is required")
	} else if !jobs.ValidID(id) {
		v.Add(field, "must be a job id as StartTraining returns it")
	}
}

// checkRef checks a model reference: a model name and, when set, a version of 1 or more or
// an alias.
func checkRef(v *fault.Violations, field string, ref *commonv1.ModelRef) {
	if !registry.ValidName(ref.GetName()) {
		v.Add(field+".name", "required: %s", nameRule)
	}
	switch sel := ref.GetSelector().(type) {
	case *commonv1.ModelRef_Version:
		if sel.Version < 1 {
			v.Add(field+".version", "must be 1 or more")
		}
	case *commonv1.ModelRef_Alias:
		if !registry.ValidAlias(sel.Alias) {
			v.Add(field+".alias", "%s", nameRule)
		}
	}
}

// checkEnum adds a violation when e is not a value of its enum.
func checkEnum(v *fault.Violations, field string, e protoreflect.Enum) {
	if e.Descriptor().Values().ByNumber(e.Number()) == nil {
		v.Add(field, "unknown value %d", e.Number())
	}
}

// checkText checks optional free text of at most max bytes.
func checkText(v *fault.Violations, field, s string, max int) {
	v.CheckString(field, s, max, false)
}

// checkAliases checks the aliases a promotion sets and removes.
func checkAliases(v *fault.Violations, set map[string]int64, remove []string) {
	for a := range set {
		if !registry.ValidAlias(a) {
			v.Add("set_aliases", "alias %s %s", fault.Quote(a), nameRule)
		}
	}
	for i, a := range remove {
		if !registry.ValidAlias(a) {
			v.Add(fmt.Sprintf("remove_aliases[%d]", i), "%s", nameRule)
		}
	}
}

// checkTimes adds a violation, named by its path under prefix, for every timestamp of m (at
// any depth) outside years 1 to 9999 or with nanos out of range, and every duration that
// is not a valid one, so that no such value reaches the feature service or a job.
func checkTimes(v *fault.Violations, prefix string, m proto.Message) {
	if m == nil {
		return
	}
	walkTimes(v, prefix, m.ProtoReflect())
}

func walkTimes(v *fault.Violations, path string, m protoreflect.Message) {
	switch t := m.Interface().(type) {
	case *timestamppb.Timestamp:
		if t.CheckValid() != nil {
			v.Add(path, "is not a valid time: years 1 to 9999, nanos 0 to 999,999,999")
		}
		return
	case *durationpb.Duration:
		if t.CheckValid() != nil {
			v.Add(path, "is not a valid duration")
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		name := string(fd.Name())
		if path != "" {
			name = path + "." + name
		}
		switch {
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len() && len(*v) <= fault.MaxReported; i++ {
				walkTimes(v, fmt.Sprintf("%s[%d]", name, i), l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walkTimes(v, fmt.Sprintf("%s[%s]", name, fault.Quote(k.String())), mv.Message())
				return len(*v) <= fault.MaxReported
			})
		default:
			walkTimes(v, name, val.Message())
		}
		return true
	})
}
