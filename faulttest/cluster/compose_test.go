package cluster

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"gopkg.in/yaml.v3"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookstream/hookstream/streams"
)

// No CI machine has a docker engine, so compose.yaml is never run there:
// these tests check that it, deploy/nats.conf and the Dockerfile describe
// the topology TestCluster runs in-process, and that every flag they give
// exists.

// repoRoot is where compose.yaml lives, from this package's directory.
const repoRoot = "../.."

// composeFile is the part of compose.yaml the tests read. Commands and
// environments must be lists and maps, not strings (the decoder refuses a
// string there), which keeps them checkable.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Deploy struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// role is the hookstream command a service runs ("" for other images).
func (s composeService) role() string {
	if s.Build == nil || len(s.Command) == 0 {
		return ""
	}
	return s.Command[0]
}

// replicas is how many containers compose starts for the service.
func (s composeService) replicas() int {
	if s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

// flags parses the service's command line after the role: --name=value,
// --name value, and --name alone for a boolean.
func (s composeService) flags() (map[string]string, error) {
	out := map[string]string{}
	args := s.Command[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("unexpected argument %q", a)
		}
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				value = args[i+1]
				i++
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--%s given twice", name)
		}
		out[name] = value
	}
	return out, nil
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return f
}

// natsImage matches the official image, with its version.
var natsImage = regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?nats:(\d+)\.(\d+)(?:\.\d+)?(?:-[a-z0-9.]+)?$`)

// natsServices returns the services that run the official nats image.
func natsServices(f composeFile) []string {
	var names []string
	for name, s := range f.Services {
		if strings.HasPrefix(s.Image, "nats:") || strings.Contains(s.Image, "/nats:") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// natsServerVersion is the nats-server the in-process tests run (go.mod's).
func natsServerVersion(t *testing.T) (major, minor int) {
	t.Helper()
	v := strings.Split(server.VERSION, ".")
	if len(v) < 2 {
		t.Fatalf("nats-server version %q", server.VERSION)
	}
	return atoi(v[0]), atoi(v[1])
}

// Three NATS nodes from the official image, each mounting the repo's one
// config file and keeping its JetStream store in a volume of its own.
func TestComposeNATSCluster(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	names := natsServices(f)
	if len(names) != 3 {
		t.Fatalf("nats services = %v, want 3 (a JetStream cluster that survives one node's loss)", names)
	}
	wantMajor, wantMinor := natsServerVersion(t)
	serverNames := map[string]string{}
	stores := map[string]string{}
	for _, name := range names {
		s := f.Services[name]
		m := natsImage.FindStringSubmatch(s.Image)
		if m == nil {
			t.Errorf("%s: image %q is not the official nats image with a version", name, s.Image)
			continue
		}
		if maj, min := atoi(m[1]), atoi(m[2]); maj != wantMajor || min != wantMinor {
			t.Errorf("%s: image %q runs nats-server %d.%d; the tests run %d.%d (go.mod): keep them on the same minor version",
				name, s.Image, maj, min, wantMajor, wantMinor)
		}
		conf := configPath(s.Command)
		if conf == "" {
			t.Errorf("%s: command %q does not name a config file with -c", name, s.Command)
			continue
		}
		if src := mountOf(s.Volumes, conf); filepath.Clean(src) != filepath.Join("deploy", "nats.conf") {
			t.Errorf("%s: %s is mounted from %q, want ./deploy/nats.conf", name, conf, src)
		}
		if env := s.Environment["HOOKSTREAM_NATS_PASSWORD"]; !natsPassword.MatchString(env) {
			t.Errorf("%s: HOOKSTREAM_NATS_PASSWORD %q, want ${HOOKSTREAM_NATS_PASSWORD:?…}: nats.conf takes the client password from it", name, env)
		}
		sn := s.Environment["NATS_SERVER_NAME"]
		if sn == "" {
			t.Errorf("%s: no NATS_SERVER_NAME in its environment (nats.conf takes server_name from it)", name)
		}
		if other, dup := serverNames[sn]; dup {
			t.Errorf("%s and %s have the same server name %q", name, other, sn)
		}
		serverNames[sn] = name
		// The store dir of nats.conf must be a named volume, one per node.
		vol := mountOf(s.Volumes, "/data")
		if _, ok := f.Volumes[vol]; !ok {
			t.Errorf("%s: /data (the JetStream store) is %q, not a named volume", name, vol)
		}
		if other, dup := stores[vol]; dup {
			t.Errorf("%s and %s share the store volume %q", name, other, vol)
		}
		stores[vol] = name
	}
}

// configPath is the file a nats-server command line loads.
func configPath(cmd []string) string {
	for i, a := range cmd {
		switch {
		case (a == "-c" || a == "--config" || a == "-config") && i+1 < len(cmd):
			return cmd[i+1]
		case strings.HasPrefix(a, "--config="):
			return strings.TrimPrefix(a, "--config=")
		}
	}
	return ""
}

// mountOf is the source mounted at target among compose volume entries
// ("src:target[:mode]"), "" when none.
func mountOf(volumes []string, target string) string {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// interpolation is a compose ${VAR:?message} (or ${VAR}) reference.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::\?[^}]*)?\}`)

// composeValues stands for what .env holds: a value per variable, made up.
func composeValue(name string) string { return "test-" + strings.ToLower(name) }

// interpolate is what compose makes of a value with composeValue's values.
func interpolate(v string) string {
	return interpolation.ReplaceAllStringFunc(v, func(ref string) string {
		return composeValue(interpolation.FindStringSubmatch(ref)[1])
	})
}

// deploy/nats.conf is a valid NATS config for a JetStream cluster node:
// the server name from the environment, JetStream storing in /data (the
// volume compose mounts), routes to all three nodes, and a max_payload that
// holds hookstream's largest dead-letter record. Clients and routes must
// authenticate, with passwords from the environment compose gives the node
// (from .env), never written in the file.
//
// Not parallel: t.Setenv.
func TestNATSConfig(t *testing.T) {
	f := readCompose(t)
	names := natsServices(f)
	for k, v := range f.Services["nats2"].Environment {
		t.Setenv(k, interpolate(v))
	}
	if os.Getenv("NATS_SERVER_NAME") != "nats2" {
		t.Fatalf("nats2's environment sets NATS_SERVER_NAME=%q", os.Getenv("NATS_SERVER_NAME"))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(repoRoot, "deploy", "nats.conf"))
	if err != nil {
		t.Fatalf("deploy/nats.conf: %v", err)
	}
	// Clients: user hookstream, the password compose takes from .env.
	if opts.Username != natsUser || opts.Password != composeValue("HOOKSTREAM_NATS_PASSWORD") {
		t.Errorf("client authorization = user %q, password %q; want user %s and ${HOOKSTREAM_NATS_PASSWORD} from the environment",
			opts.Username, opts.Password, natsUser)
	}
	if opts.Cluster.Username == "" || opts.Cluster.Password != composeValue("HOOKSTREAM_NATS_CLUSTER_PASSWORD") {
		t.Errorf("cluster authorization = user %q, password %q; want a user and ${HOOKSTREAM_NATS_CLUSTER_PASSWORD}", opts.Cluster.Username, opts.Cluster.Password)
	}
	for _, r := range opts.Routes {
		if pw, _ := r.User.Password(); r.User.Username() != opts.Cluster.Username || pw != opts.Cluster.Password {
			t.Errorf("route %s: does not sign in as the cluster's user", r.Redacted())
		}
	}
	if opts.HTTPHost != "127.0.0.1" {
		t.Errorf("monitoring listens on %q; it has no authentication: want 127.0.0.1 (the healthcheck runs in the container)", opts.HTTPHost)
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), "test-") || !strings.Contains(string(conf), "$HOOKSTREAM_NATS_PASSWORD") {
		t.Error("deploy/nats.conf does not take the client password from $HOOKSTREAM_NATS_PASSWORD")
	}
	if opts.ServerName != "nats2" {
		t.Errorf("server_name = %q, want it from NATS_SERVER_NAME (nats2)", opts.ServerName)
	}
	if !opts.JetStream {
		t.Error("jetstream is not enabled")
	}
	if opts.StoreDir != "/data" {
		t.Errorf("jetstream store_dir = %q, want /data (the volume compose mounts)", opts.StoreDir)
	}
	if need := (streams.Config{}).WithDefaults().RequiredMaxPayload(); int64(opts.MaxPayload) < need {
		t.Errorf("max_payload = %d, below the %d hookstream needs", opts.MaxPayload, need)
	}
	if opts.MaxPayload != streams.EmbeddedMaxPayload {
		t.Errorf("max_payload = %d, want %d (8MB, as the embedded server)", opts.MaxPayload, streams.EmbeddedMaxPayload)
	}
	if opts.Port != 4222 {
		t.Errorf("client port = %d, want 4222 (the --nats-url of the roles)", opts.Port)
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		t.Fatalf("cluster = %+v, want a name and a listen port", opts.Cluster)
	}
	var routed []string
	for _, r := range opts.Routes {
		if r.Port() != strconv.Itoa(opts.Cluster.Port) {
			t.Errorf("route %s: port is not the cluster port %d", r, opts.Cluster.Port)
		}
		routed = append(routed, r.Hostname())
	}
	slices.Sort(routed)
	if !slices.Equal(routed, names) {
		t.Errorf("routes go to %v, want every nats service %v", routed, names)
	}
}

// One api, two dispatchers, one poller and a sink, all built from the
// Dockerfile; every server role on the whole cluster with --replicas 3 and
// the same stream settings; the api behind a token.
func TestComposeRoles(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	natsNames := natsServices(f)
	var wantURLs []string
	for _, n := range natsNames {
		wantURLs = append(wantURLs, "nats://"+n+":4222")
	}
	known := knownFlags(t)

	count := map[string]int{}
	// streamFlags are the flags every server role must agree on: each
	// ensures the streams at start and would change them under the others.
	streamFlags := []string{"replicas", "dedup-window", "events-max-age", "dlq-max-age", "retry-max-age", "max-event-data"}
	var firstRole string
	var firstStream map[string]string
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		s := f.Services[name]
		role := s.role()
		if role == "" {
			continue
		}
		count[role] += s.replicas()
		if ctx := buildContext(s.Build); filepath.Clean(ctx) != "." {
			t.Errorf("%s: build context %q, want . (the repo's Dockerfile)", name, ctx)
		}
		flags, err := s.flags()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for fl := range flags {
			if !known[fl] {
				t.Errorf("%s: --%s is not a flag of hookstream", name, fl)
			}
		}
		switch role {
		case "api", "dispatcher", "poller":
			if got := strings.Split(flags["nats-url"], ","); !sameSet(got, wantURLs) {
				t.Errorf("%s: --nats-url %q, want every nats node %v", name, flags["nats-url"], wantURLs)
			}
			// NATS credentials: the user on the command line, the password
			// through --nats-password's twin, so in no command line.
			if flags["nats-user"] != natsUser {
				t.Errorf("%s: --nats-user %q, want %s (deploy/nats.conf's user)", name, flags["nats-user"], natsUser)
			}
			if _, ok := flags["nats-password"]; ok {
				t.Errorf("%s: --nats-password on the command line; give it as HOOKSTREAM_NATS_PASSWORD", name)
			}
			if env := s.Environment["HOOKSTREAM_NATS_PASSWORD"]; !natsPassword.MatchString(env) {
				t.Errorf("%s: HOOKSTREAM_NATS_PASSWORD %q, want ${HOOKSTREAM_NATS_PASSWORD:?…}", name, env)
			}
			if flags["replicas"] != "3" {
				t.Errorf("%s: --replicas %q, want 3", name, flags["replicas"])
			}
			waits := natsNames
			if role != "api" {
				// Roles that create the streams at the same moment on a
				// fresh cluster can wait out their timeout: the api creates
				// them first.
				waits = append(slices.Clone(natsNames), "api")
			}
			for _, n := range waits {
				if s.DependsOn[n].Condition != "service_healthy" {
					t.Errorf("%s: does not wait for %s to be healthy", name, n)
				}
			}
			st := map[string]string{}
			for _, fl := range streamFlags {
				if v, ok := flags[fl]; ok {
					st[fl] = v
				}
			}
			if firstStream == nil {
				firstRole, firstStream = name, st
			} else if fmt.Sprint(st) != fmt.Sprint(firstStream) {
				t.Errorf("%s: stream settings %v differ from %s's %v", name, st, firstRole, firstStream)
			}
		case "sink":
			if _, port, _ := strings.Cut(flags["listen"], ":"); port != "9000" {
				t.Errorf("%s: --listen %q, want port 9000", name, flags["listen"])
			}
			if flags["secret"] == "" && flags["no-verify"] != "true" {
				t.Errorf("%s: neither --secret nor --no-verify", name)
			}
		default:
			t.Errorf("%s: runs %q, not a role of the topology", name, role)
		}
		if role == "api" {
			checkAPI(t, name, s, flags)
		}
	}
	want := map[string]int{"api": 1, "dispatcher": 2, "poller": 1, "sink": 1}
	for role, n := range want {
		if count[role] != n {
			t.Errorf("%d %s containers, want %d", count[role], role, n)
		}
	}
}

// apiToken is a compose interpolation that refuses to start without the
// variable: the api listens beyond loopback, where a token is required.
var apiToken = regexp.MustCompile(`^\$\{HOOKSTREAM_API_TOKEN:\?[^}]*\}$`)

// natsPassword is the interpolation of the NATS client password, set in
// .env and refused when missing.
var natsPassword = regexp.MustCompile(`^\$\{HOOKSTREAM_NATS_PASSWORD:\?[^}]*\}$`)

// natsUser is the NATS user of deploy/nats.conf that the roles connect as.
const natsUser = "hookstream"

func checkAPI(t *testing.T, name string, s composeService, flags map[string]string) {
	t.Helper()
	if !apiToken.MatchString(flags["api-token"]) {
		t.Errorf("%s: --api-token %q, want ${HOOKSTREAM_API_TOKEN:?…} (set, never a literal)", name, flags["api-token"])
	}
	// The healthcheck is a client call through the API: healthy means the
	// streams exist and the API answers with the token.
	if hc := s.Healthcheck.Test; len(hc) < 3 || hc[0] != "CMD" || filepath.Base(hc[1]) != "hookstream" {
		t.Errorf("%s: healthcheck %q, want a hookstream client command", name, hc)
	}
	// Client commands read the token from HOOKSTREAM_TOKEN only.
	if env := s.Environment["HOOKSTREAM_TOKEN"]; !apiToken.MatchString(env) {
		t.Errorf("%s: HOOKSTREAM_TOKEN %q in its environment, want ${HOOKSTREAM_API_TOKEN:?…} for the healthcheck's client", name, env)
	}
	host, port, err := splitHostPort(flags["http"])
	if err != nil || host != "0.0.0.0" {
		t.Errorf("%s: --http %q, want 0.0.0.0:PORT so that the published port reaches it", name, flags["http"])
		return
	}
	published := false
	for _, p := range s.Ports {
		if strings.HasSuffix(p, ":"+port) {
			published = true
		}
	}
	if !published {
		t.Errorf("%s: port %s is not published (ports %v)", name, port, s.Ports)
	}
}

func splitHostPort(addr string) (string, string, error) {
	u, err := url.Parse("//" + addr)
	if err != nil {
		return "", "", err
	}
	return u.Hostname(), u.Port(), nil
}

func buildContext(b any) string {
	switch v := b.(type) {
	case string:
		return v
	case map[string]any:
		if c, ok := v["context"].(string); ok {
			return c
		}
	}
	return fmt.Sprintf("%v", b)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// knownFlags are the flag names cmd/hookstream defines (the names passed to
// the flag set's String, StringVar, … and Var), read from its source so
// that a misspelt flag in compose.yaml fails here rather than in a
// container that exits at start.
func knownFlags(t *testing.T) map[string]bool {
	t.Helper()
	dir := filepath.Join(repoRoot, "cmd", "hookstream")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/hookstream sources: %v", err)
	}
	defining := map[string]bool{
		"String": true, "StringVar": true, "Int": true, "IntVar": true, "Bool": true, "BoolVar": true,
		"Duration": true, "DurationVar": true, "Float64": true, "Float64Var": true, "Var": true,
	}
	known := map[string]bool{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !defining[sel.Sel.Name] {
				return true
			}
			for _, arg := range call.Args {
				if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if name, err := strconv.Unquote(lit.Value); err == nil {
						known[name] = true
					}
					break
				}
			}
			return true
		})
	}
	if !known["nats-url"] || !known["replicas"] {
		t.Fatalf("found no server flags in %s (found %d names): has the flag code moved?", dir, len(known))
	}
	return known
}

// The Dockerfile builds ./cmd/hookstream statically in a Go stage and runs
// it as the image's entrypoint.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	// Join continued lines, drop comments.
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var froms, builds, entry []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(strings.ToUpper(l), "FROM "):
			froms = append(froms, l)
		case strings.Contains(l, "go build"):
			builds = append(builds, l)
		case strings.HasPrefix(strings.ToUpper(l), "ENTRYPOINT "):
			entry = append(entry, l)
		}
	}
	if len(froms) < 2 || !strings.Contains(froms[0], "golang:") {
		t.Errorf("stages %q: want a golang build stage and a runtime stage", froms)
	}
	if len(builds) != 1 || !strings.Contains(builds[0], "./cmd/hookstream") || !strings.Contains(builds[0], "CGO_ENABLED=0") {
		t.Errorf("go build lines %q: want one static (CGO_ENABLED=0) build of ./cmd/hookstream", builds)
	}
	if len(entry) != 1 || !strings.Contains(entry[0], "hookstream") {
		t.Errorf("ENTRYPOINT %q: want the hookstream binary", entry)
	}
}
