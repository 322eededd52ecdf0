// Package deathsig asks the system to signal a child process when its
// parent dies, where the system can: Linux's Pdeathsig. Elsewhere it does
// nothing, and a child outlives a parent that was killed (SIGKILL) or
// crashed; a parent that exits normally still stops its children itself.
package deathsig
