package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStatus reads a "kB" field of /proc/<pid>/status (pid 0: this
// process) in bytes; 0 where there is no such file or field.
func procStatus(pid int, field string) uint64 {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

func procPath(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// RSS is the resident set size of process pid now (0: this process).
func RSS(pid int) uint64 { return procStatus(pid, "VmRSS") }

// PeakRSS is the highest resident set size of process pid (0: this
// process) since it started or since ResetPeakRSS.
func PeakRSS(pid int) uint64 { return procStatus(pid, "VmHWM") }

// ResetPeakRSS sets process pid's peak RSS back to its RSS now (Linux's
// clear_refs "5"), so that PeakRSS measures one phase of a run; it reports
// false where that is not possible: PeakRSS then covers the whole process.
func ResetPeakRSS(pid int) bool {
	return os.WriteFile(procPath(pid, "clear_refs"), []byte("5"), 0) == nil
}

// Sampler polls the RSS of a process it cannot reset (another user's, or
// one without clear_refs) and keeps the highest value seen.
type Sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak uint64
}

// SampleRSS starts sampling pid's RSS every interval until Stop.
func SampleRSS(pid int, interval time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}), peak: RSS(pid)}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.note(RSS(pid))
			}
		}
	}()
	return s
}

func (s *Sampler) note(v uint64) {
	s.mu.Lock()
	s.peak = max(s.peak, v)
	s.mu.Unlock()
}

// Stop ends the sampling and returns the highest RSS seen.
func (s *Sampler) Stop() uint64 {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.note(RSS(s.pid))
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// MiB turns bytes into mebibytes, for printing.
func MiB(n uint64) float64 { return float64(n) / (1 << 20) }
