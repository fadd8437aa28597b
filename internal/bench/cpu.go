package bench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcessCPU is the user and system CPU time process pid (0: this one) used
// so far, from /proc/<pid>/stat; 0 where there is none.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after its closing parenthesis; utime and stime are the 14th and 15th.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
}

// MachineCPU is the CPU time every core of the machine spent busy so far,
// from /proc/stat; 0 where there is none.
func MachineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		// idle and iowait (the 4th and 5th) are not busy; guest time is
		// already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * (time.Second / 100)
}

// CPUProbe measures the cores a process and the rest of the machine used
// over a phase.
type CPUProbe struct {
	pid           int
	at            time.Time
	proc, machine time.Duration
}

// StartCPU starts measuring process pid (0: this one).
func StartCPU(pid int) CPUProbe {
	return CPUProbe{pid: pid, at: time.Now(), proc: ProcessCPU(pid), machine: MachineCPU()}
}

// Cores returns the cores the process used since StartCPU, and those the
// rest of the machine used meanwhile: what the figures competed with.
func (p CPUProbe) Cores() (process, others float64) {
	el := time.Since(p.at).Seconds()
	if el <= 0 {
		return 0, 0
	}
	process = (ProcessCPU(p.pid) - p.proc).Seconds() / el
	others = (MachineCPU()-p.machine).Seconds()/el - process
	return process, max(others, 0)
}
