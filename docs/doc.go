// Package docs holds muster's user documentation. Its only code is the test
// that keeps reference.md complete: every label, annotation, Event reason,
// metric and status field the code defines must be documented there.
package docs
