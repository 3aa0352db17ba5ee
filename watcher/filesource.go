package watcher

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Timing of the file watch: a burst of events is applied debounce after its
// last event, and never later than maxDelay after its first one.
const (
	debounce = 100 * time.Millisecond
	maxDelay = 500 * time.Millisecond
)

// FileSource keeps the store equal to the manifests in a directory tree. Each
// file is a store source named by its path (Dir joined with the file's
// relative path).
//
// A file that fails to decode is logged at ERROR and keeps its last good
// objects in the store until it is fixed or removed. Documents of unknown
// kinds are logged at WARN once per (apiVersion, kind); an object defined in
// several files is logged at WARN, and the file loaded last wins.
type FileSource struct {
	Dir    string
	Store  *Store
	Logger *slog.Logger // nil means slog.Default()

	mu   sync.Mutex
	errs map[string]error // guarded by mu

	// synced, if set before Run, receives a value after each rescan (tests).
	synced chan struct{}
}

// Errors returns the current error of every file that failed to load, by
// path; it is empty when every file loaded. Safe for concurrent use.
func (f *FileSource) Errors() map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]error, len(f.errs))
	for k, v := range f.errs {
		out[k] = v
	}
	return out
}

// setError records err (nil clears) for path and reports whether it differs
// from the error recorded before.
func (f *FileSource) setError(path string, err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, had := f.errs[path]
	if err == nil {
		delete(f.errs, path)
		return had
	}
	if f.errs == nil {
		f.errs = map[string]error{}
	}
	f.errs[path] = err
	return !had || old.Error() != err.Error()
}

func (f *FileSource) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.Default()
	}
	return f.Logger
}

// Run loads every file under Dir into the store, closes ready (if non-nil),
// then applies changes to the tree within a second until ctx is done, when
// it returns nil. It returns an error, without closing ready, if Dir is not
// a directory or cannot be read or watched at start; later, if the tree can
// no longer be read or the watch fails. Run must be called once.
func (f *FileSource) Run(ctx context.Context, ready chan<- struct{}) (err error) {
	info, err := os.Stat(f.Dir)
	if err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("file source: %s is not a directory", f.Dir)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", f.Dir, err)
	}
	defer func() {
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close watch of %s: %w", f.Dir, cerr))
		}
	}()
	s := &syncer{f: f, w: w, files: map[string]*fileState{}, watched: map[string]bool{},
		warned: map[string]bool{}, dups: map[string]string{}}
	if err := s.sync(); err != nil {
		return err
	}
	if ready != nil {
		close(ready)
	}
	return s.loop(ctx)
}

// fileState is what the source last saw of one file.
type fileState struct {
	sum  [sha256.Size]byte // content of the last read, good or bad
	objs []Object          // objects of the last good read
}

// syncer is the state of one Run; only its goroutine touches it.
type syncer struct {
	f       *FileSource
	w       *fsnotify.Watcher
	files   map[string]*fileState
	watched map[string]bool   // directories under watch
	warned  map[string]bool   // "apiVersion kind" already warned about
	dups    map[string]string // duplicate object -> files, as last warned
}

// loop debounces watch events into rescans until ctx is done.
func (s *syncer) loop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // first event of the pending burst; zero if none
	schedule := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		timer.Reset(min(debounce, max(0, first.Add(maxDelay).Sub(now))))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-s.w.Events:
			if !ok {
				return fmt.Errorf("watch %s: closed", s.f.Dir)
			}
			schedule()
		case err, ok := <-s.w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: closed", s.f.Dir)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("watch %s: %w", s.f.Dir, err)
			}
			schedule() // events were lost: the rescan recovers them
		case <-timer.C:
			first = time.Time{}
			if err := s.sync(); err != nil {
				return err
			}
		}
	}
}

// sync rescans the tree: it watches new directories, applies files whose
// content changed and drops files that vanished.
func (s *syncer) sync() error {
	paths, err := s.scan()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range paths {
		ok, err := s.syncFile(p)
		if err != nil {
			return err
		}
		seen[p] = ok
	}
	for _, p := range sortedKeys(s.files) {
		if !seen[p] {
			if err := s.remove(p); err != nil {
				return err
			}
		}
	}
	s.warnDuplicates()
	if s.f.synced != nil {
		select {
		case s.f.synced <- struct{}{}:
		default:
		}
	}
	return nil
}

// scan lists the manifest files and watches every directory. A directory
// newly watched is scanned again, as files created in it before its watch
// started raised no event.
func (s *syncer) scan() ([]string, error) {
	for {
		paths, dirs, err := scanTree(s.f.Dir)
		if err != nil {
			return nil, err
		}
		added, err := s.watch(dirs)
		if err != nil || !added {
			return paths, err
		}
	}
}

// watch adds the directories not yet watched and forgets vanished ones (the
// kernel drops their watches itself). It reports whether it added any.
func (s *syncer) watch(dirs []string) (bool, error) {
	now := map[string]bool{}
	added := false
	for _, d := range dirs {
		if !s.watched[d] {
			err := s.w.Add(d)
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone already
			}
			if err != nil {
				return false, fmt.Errorf("watch %s: %w", d, err)
			}
			added = true
		}
		now[d] = true
	}
	s.watched = now
	return added, nil
}

// syncFile reads path and applies it if its content changed. It reports
// false if the file vanished before it could be read.
func (s *syncer) syncFile(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	st := s.files[path]
	if st == nil {
		st = &fileState{}
		s.files[path] = st
	}
	if err != nil {
		st.sum = [sha256.Size]byte{} // reread once readable
		s.fileError(path, fmt.Errorf("%s: %w", path, err))
		return true, nil
	}
	sum := sha256.Sum256(data)
	if st.sum == sum {
		return true, nil
	}
	st.sum = sum
	objs, warns, err := DecodeFile(path, data)
	if err != nil {
		s.fileError(path, err)
		return true, nil
	}
	s.f.setError(path, nil)
	s.warnUnknown(warns)
	return true, s.apply(path, objs)
}

// fileError records a user's broken file and logs it once per distinct error.
func (s *syncer) fileError(path string, err error) {
	if s.f.setError(path, err) {
		s.f.logger().Error("cannot load file; keeping its last good objects", "file", path, "error", err)
	}
}

// remove drops a vanished file's objects.
func (s *syncer) remove(path string) error {
	s.f.setError(path, nil)
	if err := s.apply(path, nil); err != nil {
		return err
	}
	delete(s.files, path)
	return nil
}

// apply makes the objects of path exactly objs. An object path drops that
// another file still defines is first handed over to that file, so it never
// disappears from the store in between.
func (s *syncer) apply(path string, objs []Object) error {
	for _, o := range s.dropped(path, objs) {
		if other, obj, ok := s.definer(path, o); ok {
			if _, err := s.f.Store.Upsert(other, obj); err != nil {
				return fmt.Errorf("apply %s: %w", other, err)
			}
		}
	}
	if _, err := s.f.Store.ReplaceSource(path, objs); err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	s.files[path].objs = objs
	return nil
}

// dropped returns the objects path held before that objs no longer holds.
func (s *syncer) dropped(path string, objs []Object) []Object {
	st := s.files[path]
	if st == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, o := range objs {
		keep[objectID(o)] = true
	}
	var out []Object
	for _, o := range st.objs {
		if !keep[objectID(o)] {
			out = append(out, o)
		}
	}
	return out
}

// definer returns the last file, in path order, other than path that defines
// an object with o's kind and key, and its definition there.
func (s *syncer) definer(path string, o Object) (string, Object, bool) {
	var file string
	var def Object
	for _, p := range sortedKeys(s.files) {
		if p == path {
			continue
		}
		for _, c := range s.files[p].objs {
			if objectID(c) == objectID(o) {
				file, def = p, c
			}
		}
	}
	return file, def, file != ""
}

// warnUnknown logs each unknown (apiVersion, kind) once per Run.
func (s *syncer) warnUnknown(warns []Warning) {
	for _, w := range warns {
		id := w.APIVersion + " " + w.Kind
		if s.warned[id] {
			continue
		}
		s.warned[id] = true
		s.f.logger().Warn("ignoring a kind weir does not read", "apiVersion", w.APIVersion,
			"kind", w.Kind, "at", fmt.Sprintf("%s:%d", w.File, w.Line), "reason", w.Message)
	}
}

// warnDuplicates logs each object defined more than once, when the set of
// files defining it changes.
func (s *syncer) warnDuplicates() {
	defs := map[string][]string{}
	byID := map[string]Object{}
	for _, p := range sortedKeys(s.files) {
		for _, o := range s.files[p].objs {
			defs[objectID(o)] = append(defs[objectID(o)], p)
			byID[objectID(o)] = o
		}
	}
	now := map[string]string{}
	for _, id := range sortedKeys(defs) {
		files := defs[id]
		if len(files) < 2 {
			continue
		}
		now[id] = strings.Join(files, ", ")
		if s.dups[id] == now[id] {
			continue
		}
		o := byID[id]
		s.f.logger().Warn("object defined more than once; the file loaded last wins",
			"kind", o.Kind, "object", o.Key(), "files", now[id],
			"using", s.f.Store.Sources(o.Kind)[o.Key()])
	}
	s.dups = now
}

// objectID identifies an object across files: kind and namespace/name.
func objectID(o Object) string { return string(o.Kind) + " " + o.Key() }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
