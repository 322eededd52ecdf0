package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogBuffer(t *testing.T) {
	var out bytes.Buffer
	b := &logBuffer{w: &out}
	log := slog.New(flushingHandler{slog.NewTextHandler(b, nil), b})

	log.Info("routine")
	if out.Len() != 0 {
		t.Fatalf("an info line was written at once: %q", out.String())
	}
	log.Warn("trouble")
	if got := out.String(); !strings.Contains(got, "msg=routine") || !strings.Contains(got, "msg=trouble") ||
		strings.Index(got, "routine") > strings.Index(got, "trouble") {
		t.Fatalf("after a warning the log is %q, want both lines, in order", got)
	}
	out.Reset()
	log.With("k", "v").Info("again")
	b.Flush()
	if got := out.String(); !strings.Contains(got, "msg=again k=v") {
		t.Fatalf("after Flush the log is %q, want the line", got)
	}
	for range logBufferSize / 16 {
		log.Info("filling")
	}
	if out.Len() < logBufferSize/2 {
		t.Fatalf("a full buffer was not written: %d bytes out", out.Len())
	}
}
