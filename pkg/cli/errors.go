package cli

import "errors"

// errSilentFailure makes the command exit 1 after it has printed its own
// explanation.
var errSilentFailure = errors.New("failed")
