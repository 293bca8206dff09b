// SPDX-License-Identifier: Apache-2.0
// Writes a module version into a GOPROXY=file:// tree as the module proxy would serve it.

// Usage: go run modzip/main.go MODULE VERSION ROOT PROXYDIR < file-list
//
// The file list (one path relative to ROOT a line: the files the VCS
// holds, from git ls-files) is filtered as golang.org/x/mod/zip does for
// the proxy: nothing from a directory holding another go.mod (a nested
// module), from vendor/, nor .git, .hg, .svn, .bzr; no symlinks or other
// non-regular files; every path must be valid in a module. Go 1.19 has no
// `go mod zip`, and this test uses the standard library only.
package main

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const maxZipFile = 500 << 20 // the proxy's limit on the unzipped size

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: modzip MODULE VERSION ROOT PROXYDIR < file-list")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "modzip:", err)
		os.Exit(1)
	}
}

func run(module, version, root, proxy string, list io.Reader) error {
	var files []string
	scanner := bufio.NewScanner(list)
	for scanner.Scan() {
		if name := scanner.Text(); name != "" {
			files = append(files, filepath.ToSlash(name))
		}
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	// Directories (below the root) that hold a go.mod are other modules.
	nested := map[string]bool{}
	for _, f := range files {
		if path.Base(f) == "go.mod" && path.Dir(f) != "." {
			nested[path.Dir(f)] = true
		}
	}
	var kept []string
	for _, f := range files {
		if excluded(f, nested) {
			continue
		}
		info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f)))
		if os.IsNotExist(err) {
			continue // deleted in the worktree, not yet in the index
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if err := checkPath(f); err != nil {
			return err
		}
		kept = append(kept, f)
	}
	sort.Strings(kept)

	dir := filepath.Join(proxy, filepath.FromSlash(escapePath(module)), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	zw := zip.NewWriter(zf)
	var total int64
	for _, f := range kept {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		if total += int64(len(data)); total > maxZipFile {
			return fmt.Errorf("module larger than %d bytes", maxZipFile)
		}
		w, err := zw.Create(module + "@" + version + "/" + f)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := zf.Close(); err != nil {
		return err
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), mod, 0o644); err != nil {
		return err
	}
	info := fmt.Sprintf(`{"Version":%q,"Time":%q}`+"\n", version,
		time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(dir, version+".info"), []byte(info), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s@%s: %d files\n", module, version, len(kept))
	return os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o644)
}

func excluded(f string, nested map[string]bool) bool {
	parts := strings.Split(f, "/")
	for i, p := range parts[:len(parts)-1] {
		switch p {
		case ".git", ".hg", ".svn", ".bzr", "vendor":
			return true
		}
		if nested[strings.Join(parts[:i+1], "/")] {
			return true
		}
	}
	return false
}

// checkPath is module.CheckFilePath's rule, in short: no empty, dot or
// dot-dot elements, and only characters a module file path may hold.
func checkPath(f string) error {
	for _, elem := range strings.Split(f, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("invalid file path %q", f)
		}
		for _, r := range elem {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				strings.ContainsRune("!#$%&()+,-.=@[]^_{}~ ", r)
			if !ok {
				return fmt.Errorf("file path %q holds %q, not allowed in a module", f, r)
			}
		}
	}
	return nil
}

// escapePath is the proxy's case encoding: an upper-case letter becomes
// '!' and the letter in lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
