//go:build linux

package fanout

// ParseRelease exposes parseRelease to the tests.
var ParseRelease = parseRelease

// SetKernelRelease makes the package see the release rel instead of uname's and returns the
// function that restores it.
func SetKernelRelease(rel string) (restore func()) {
	old := kernelRelease
	kernelRelease = func() string { return rel }
	return func() { kernelRelease = old }
}
