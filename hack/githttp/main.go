// githttp serves the bare repositories under a directory over Git's smart HTTP protocol, read-only
// and on loopback only, through `git http-backend` (CGI). It is the source Flux's source-controller
// clones in the benchmark (hack/flux-up.sh starts it; benches/pipeline/flux.rs writes the repositories).
//
//	githttp -root DIR -addr 127.0.0.1:PORT
//
// A repository DIR/NAME.git is at http://127.0.0.1:PORT/NAME.git.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	root := flag.String("root", "", "the directory of the bare repositories (NAME.git)")
	addr := flag.String("addr", "127.0.0.1:0", "the loopback address to listen on")
	flag.Parse()
	if *root == "" {
		log.Fatal("-root is required")
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("-addr %s: only a loopback address is served", *addr)
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		log.Fatalf("git --exec-path: %v (is git installed?)", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		// Every repository under the root, without a git-daemon-export-ok file in each; pushes stay
		// off (http-backend refuses receive-pack to an unauthenticated client).
		Env: []string{"GIT_PROJECT_ROOT=" + abs, "GIT_HTTP_EXPORT_ALL=1"},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving %s at http://%s", abs, ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		backend.ServeHTTP(w, r)
	})))
}
