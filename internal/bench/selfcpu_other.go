//go:build !unix

package bench

import "time"

// SelfCPU is 0: this system's CPU time is not read.
func SelfCPU() time.Duration { return 0 }
