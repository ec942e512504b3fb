//go:build !purego

package recommend

//go:noescape
func sgemm6x16(k int, a, b, c *float32, ldc int)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

func xgetbv0() (lo, hi uint32)

// hasAVX2FMA reports whether the processor and the operating system support AVX2 and FMA3.
func hasAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 { // XMM and YMM state saved by the OS
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	return b7&(1<<5) != 0
}

// tile6x16 is the micro-kernel: the assembly one when the processor has AVX2 and FMA3.
var tile6x16 = func() func(k int, a, b, c []float32, ldc int) {
	if !hasAVX2FMA() {
		return tile6x16Go
	}
	return func(k int, a, b, c []float32, ldc int) {
		_ = a[k*mr-1]
		_ = b[k*nr-1]
		_ = c[(mr-1)*ldc+nr-1]
		sgemm6x16(k, &a[0], &b[0], &c[0], ldc)
	}
}()

// hasAssemblyKernel reports whether tile6x16 is the assembly kernel.
func hasAssemblyKernel() bool { return hasAVX2FMA() }
