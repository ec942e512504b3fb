package registry

import (
	"strconv"
	"strings"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
)

// ParseRef reads a model reference written as one string: "NAME", "NAME@VERSION" (a version
// number) or "NAME@ALIAS". It checks nothing: ValidName and ValidAlias say whether the parts
// are well formed (an alias starts with a letter, so a number after @ is always a version).
func ParseRef(s string) *commonv1.ModelRef {
	name, selector, found := strings.Cut(s, "@")
	ref := &commonv1.ModelRef{Name: name}
	if found {
		setSelector(ref, selector)
	}
	return ref
}

// RefOf returns the reference to a model by name and selector: a version number, an alias,
// or "" for the live versions.
func RefOf(name, selector string) *commonv1.ModelRef {
	ref := &commonv1.ModelRef{Name: name}
	if selector != "" {
		setSelector(ref, selector)
	}
	return ref
}

func setSelector(ref *commonv1.ModelRef, selector string) {
	if v, err := strconv.ParseInt(selector, 10, 64); err == nil {
		ref.Selector = &commonv1.ModelRef_Version{Version: v}
		return
	}
	ref.Selector = &commonv1.ModelRef_Alias{Alias: selector}
}
