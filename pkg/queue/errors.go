package queue

import "strings"

// FieldError is one problem in a queue configuration, at a path such as
// root.analytics.adhoc.max.cpu.
type FieldError struct {
	Path, Msg string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ConfigError is every problem found in a queue configuration, in the order
// they appear in the file.
type ConfigError []FieldError

func (e ConfigError) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// errs collects FieldErrors.
type errs struct{ list ConfigError }

func (e *errs) add(path, format string, args ...any) {
	e.list = append(e.list, FieldError{Path: path, Msg: sprintf(format, args...)})
}

func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	return e.list
}
