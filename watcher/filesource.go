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
		warned: map[string]bool{}, dups: map[objectID]string{}, definers: map[objectID]map[string]Object{}}
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
	watched map[string]bool     // directories under watch
	warned  map[string]bool     // "apiVersion kind" already warned about
	dups    map[objectID]string // duplicate object -> files, as last warned
	// definers holds, for every object some file defines, each such file and
	// the object's last definition in it. It equals what files hold, so that
	// finding who else defines an object costs no scan of other files.
	definers map[objectID]map[string]Object
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
// content changed and drops files that vanished. The store signals the
// rescan's changes once, when all are applied.
func (s *syncer) sync() error {
	defer s.f.Store.Hold()()
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
		if other, obj, ok := s.definer(path, idOf(o)); ok {
			if _, err := s.f.Store.Upsert(other, obj); err != nil {
				return fmt.Errorf("apply %s: %w", other, err)
			}
		}
	}
	if _, err := s.f.Store.ReplaceSource(path, objs); err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	s.index(path, objs)
	return nil
}

// index makes objs what path holds, in files and definers.
func (s *syncer) index(path string, objs []Object) {
	st := s.files[path]
	for _, o := range st.objs {
		k := idOf(o)
		delete(s.definers[k], path)
		if len(s.definers[k]) == 0 {
			delete(s.definers, k)
		}
	}
	for _, o := range objs {
		k := idOf(o)
		if s.definers[k] == nil {
			s.definers[k] = map[string]Object{}
		}
		s.definers[k][path] = o // a later definition in the file wins
	}
	st.objs = objs
}

// dropped returns the objects path held before that objs no longer holds.
func (s *syncer) dropped(path string, objs []Object) []Object {
	st := s.files[path]
	if st == nil {
		return nil
	}
	keep := make(map[objectID]bool, len(objs))
	for _, o := range objs {
		keep[idOf(o)] = true
	}
	var out []Object
	for _, o := range st.objs {
		if !keep[idOf(o)] {
			out = append(out, o)
		}
	}
	return out
}

// definer returns the last file, in path order, other than path that defines
// the object k, and its last definition there.
func (s *syncer) definer(path string, k objectID) (string, Object, bool) {
	var file string
	var def Object
	for p, o := range s.definers[k] {
		if p != path && p > file {
			file, def = p, o
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

// warnDuplicates logs each object defined more than once (twice in one file
// counts), when the set of files defining it changes.
func (s *syncer) warnDuplicates() {
	defs := map[objectID][]string{}
	for _, p := range sortedKeys(s.files) {
		for _, o := range s.files[p].objs {
			defs[idOf(o)] = append(defs[idOf(o)], p)
		}
	}
	var dups []objectID
	for k, files := range defs {
		if len(files) > 1 {
			dups = append(dups, k)
		}
	}
	sort.Slice(dups, func(i, j int) bool { return dups[i].less(dups[j]) })
	sources := map[Kind]map[string]string{} // read once per kind, as needed
	now := make(map[objectID]string, len(dups))
	for _, k := range dups {
		now[k] = strings.Join(defs[k], ", ")
		if s.dups[k] == now[k] {
			continue
		}
		if sources[k.kind] == nil {
			sources[k.kind] = s.f.Store.Sources(k.kind)
		}
		s.f.logger().Warn("object defined more than once; the file loaded last wins",
			"kind", k.kind, "object", k.key(), "files", now[k], "using", sources[k.kind][k.key()])
	}
	s.dups = now
}

// objectID identifies an object across files: kind, namespace and name.
type objectID struct {
	kind            Kind
	namespace, name string
}

func idOf(o Object) objectID { return objectID{kind: o.Kind, namespace: o.Namespace, name: o.Name} }

// key returns "namespace/name", as Object.Key.
func (k objectID) key() string { return k.namespace + "/" + k.name }

// less orders keys by kind, then by "namespace/name".
func (k objectID) less(o objectID) bool {
	if k.kind != o.kind {
		return k.kind < o.kind
	}
	return k.key() < o.key()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
