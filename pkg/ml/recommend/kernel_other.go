//go:build !amd64 || purego

package recommend

var tile6x16 = tile6x16Go

// hasAssemblyKernel reports whether tile6x16 is the assembly kernel.
func hasAssemblyKernel() bool { return false }
