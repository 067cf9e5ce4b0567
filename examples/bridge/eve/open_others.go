//go:build !unix

package eve

import "os"

// openFile opens path for appending; without unix there is no O_NOFOLLOW or O_NONBLOCK to use.
func openFile(path string, _ bool) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}
