//go:build unix

package eve

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openFile opens path for appending without ever blocking: O_NONBLOCK, so that opening a FIFO
// without a reader fails with ENXIO instead of waiting for one, and O_NOFOLLOW unless
// allowSpecial. What was opened is then checked with fstat (no race with a rename between a
// check and the open); a regular file gets its blocking mode back, since the poller does not
// take regular files.
func openFile(path string, allowSpecial bool) (*os.File, error) {
	flags := unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_NONBLOCK | unix.O_CLOEXEC
	if !allowSpecial {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0o640)
	if err != nil {
		if err == unix.ELOOP && !allowSpecial {
			return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: a symbolic link (give the real path, or allow it with -eve-allow-special)", ErrSpecial)}
		}
		var st unix.Stat_t
		if err == unix.ENXIO && !allowSpecial && unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			// A FIFO without a reader: say what it is, not just ENXIO.
			return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: %s (allow it with -eve-allow-special)", ErrSpecial, kind(uint32(st.Mode)))}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
		}
	} else if !allowSpecial {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: %s (allow it with -eve-allow-special)", ErrSpecial, kind(uint32(st.Mode)))}
	}
	// A special file stays non-blocking: os.NewFile puts it in the runtime's poller, so a
	// write to a FIFO nobody reads parks only the writer goroutine, and Close can wake it.
	return os.NewFile(uintptr(fd), path), nil
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a regular file"
}
