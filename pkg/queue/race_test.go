//go:build race

package queue

func init() { raceDetector = true }
