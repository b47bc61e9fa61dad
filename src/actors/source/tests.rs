//! The memory of the manifest source and the actor, against a temporary directory.

use super::*;
use crate::testing::Sink;
use std::fs;
use std::path::Path;
use std::sync::Arc;

fn write(dir: &Path, file: &str, text: &str) {
    fs::write(dir.join(file), text).unwrap();
}

fn pod_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

fn scan(dir: &Path, m: &mut SourceMemory) -> Vec<(String, String, Option<String>)> {
    let result = manifest::scan_dir_preferring(dir, m.owners());
    let mut out: Vec<_> = m
        .apply(&result)
        .into_iter()
        .map(|r| {
            let image = r.pod.pod.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap();
            (r.pod.name().to_string(), image, r.problem)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_broken_file_keeps_its_last_good_pods_until_fixed_or_removed() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "a.yaml", &pod_yaml("web", "busybox:1"));
    assert_eq!(
        scan(d.path(), &mut m),
        vec![("web".into(), "busybox:1".into(), None)]
    );

    write(
        d.path(),
        "a.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: [broken\n",
    );
    let got = scan(d.path(), &mut m);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "busybox:1", "runs on its last good spec");
    let problem = got[0].2.clone().expect("the problem is shown");
    assert!(problem.contains("a.yaml"), "{problem}");

    write(d.path(), "a.yaml", &pod_yaml("web", "busybox:2"));
    assert_eq!(
        scan(d.path(), &mut m),
        vec![("web".into(), "busybox:2".into(), None)]
    );

    write(
        d.path(),
        "a.yaml",
        "kind: Deployment\napiVersion: apps/v1\n",
    );
    assert_eq!(scan(d.path(), &mut m).len(), 1);
    fs::remove_file(d.path().join("a.yaml")).unwrap();
    assert!(
        scan(d.path(), &mut m).is_empty(),
        "removing the file removes its pods"
    );
}

#[test]
fn a_file_broken_from_the_start_runs_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "a.yaml", "{ not yaml");
    assert!(scan(d.path(), &mut m).is_empty());
}

#[test]
fn the_first_file_seen_keeps_a_duplicate_pod_until_it_lets_go() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    // z.yaml is seen first; a.yaml (earlier in name order) comes later.
    write(d.path(), "z.yaml", &pod_yaml("web", "from-z:1"));
    assert_eq!(scan(d.path(), &mut m)[0].1, "from-z:1");
    write(d.path(), "a.yaml", &pod_yaml("web", "from-a:1"));
    let result = manifest::scan_dir_preferring(d.path(), m.owners());
    let dup = result
        .errors
        .iter()
        .map(|e| e.to_string())
        .find(|e| e.contains("already defined"))
        .expect("the duplicate is refused");
    assert!(dup.contains("a.yaml") && dup.contains("z.yaml"), "{dup}");
    assert_eq!(
        scan(d.path(), &mut m)[0].1,
        "from-z:1",
        "the first seen wins"
    );
    // The owner goes: the other takes over.
    fs::remove_file(d.path().join("z.yaml")).unwrap();
    assert_eq!(scan(d.path(), &mut m)[0].1, "from-a:1");
}

// --- item 1: an empty file is a broken edit, not a removal ------------------------

#[test]
fn an_empty_file_whose_pods_ran_keeps_them_until_it_parses_again() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "p.yaml", &pod_yaml("p", "busybox:1"));
    assert_eq!(scan(d.path(), &mut m).len(), 1);
    for half_written in ["", "# kubectl get pod p -o yaml > p.yaml\n", "---\n"] {
        write(d.path(), "p.yaml", half_written);
        let got = scan(d.path(), &mut m);
        assert_eq!(got.len(), 1, "{half_written:?}: the pod stays");
        assert_eq!(got[0].1, "busybox:1");
        let problem = got[0].2.clone().expect("the problem is shown");
        assert!(
            problem.contains("p.yaml") && problem.contains("empty"),
            "{problem}"
        );
    }
    write(d.path(), "p.yaml", &pod_yaml("p", "busybox:1"));
    assert_eq!(
        scan(d.path(), &mut m),
        vec![("p".into(), "busybox:1".into(), None)]
    );
    // A file that parses and declares nothing else lets the pod go.
    write(
        d.path(),
        "p.yaml",
        "apiVersion: v1\nkind: List\nitems: []\n",
    );
    assert!(scan(d.path(), &mut m).is_empty());
}

#[test]
fn an_empty_file_that_never_had_pods_runs_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "e.yaml", "");
    write(d.path(), "c.yaml", "# nothing yet\n");
    assert!(scan(d.path(), &mut m).is_empty());
    assert!(!m.had_pods(&d.path().join("e.yaml")));
}

#[test]
fn a_file_turned_into_a_directory_keeps_its_pods_a_removed_one_does_not() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "p.yaml", &pod_yaml("p", "busybox:1"));
    write(d.path(), "q.yaml", &pod_yaml("q", "busybox:1"));
    assert_eq!(scan(d.path(), &mut m).len(), 2);
    fs::remove_file(d.path().join("p.yaml")).unwrap();
    fs::create_dir(d.path().join("p.yaml")).unwrap();
    fs::rename(d.path().join("q.yaml"), d.path().join("q.yaml.bak")).unwrap();
    let got = scan(d.path(), &mut m);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "p");
    assert!(got[0].2.as_deref().unwrap_or("").contains("directory"));
}

// --- item 1: the memory survives a restart ---------------------------------------

/// The memory as a restarted podvisor reads it back.
fn restarted(m: &SourceMemory) -> SourceMemory {
    SourceMemory::from_bytes(&m.to_bytes()).expect("reads back")
}

#[test]
fn a_file_broken_while_down_keeps_its_pods_after_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "p.yaml", &pod_yaml("p", "busybox:1"));
    scan(d.path(), &mut m);
    let saved = m.to_bytes();
    assert_eq!(restarted(&m), m);
    assert_eq!(
        restarted(&m).to_bytes(),
        saved,
        "the same memory, the same bytes"
    );

    for broken in ["", "apiVersion: v1\nkind: Pod\nmetadata: [\n"] {
        write(d.path(), "p.yaml", broken);
        let mut after = SourceMemory::from_bytes(&saved).unwrap();
        let got = scan(d.path(), &mut after);
        assert_eq!(got.len(), 1, "{broken:?}: {got:?}");
        assert!(got[0].2.is_some());
        assert!(
            scan(d.path(), &mut SourceMemory::default()).is_empty(),
            "without the saved memory the pod would go"
        );
    }
}

#[test]
fn the_first_owner_wins_across_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut m = SourceMemory::default();
    write(d.path(), "z.yaml", &pod_yaml("web", "from-z:1"));
    scan(d.path(), &mut m);
    // While podvisor is down, a.yaml (first in name order) declares it too.
    write(d.path(), "a.yaml", &pod_yaml("web", "from-a:1"));
    let mut after = restarted(&m);
    assert_eq!(scan(d.path(), &mut after)[0].1, "from-z:1");
    assert_eq!(scan(d.path(), &mut after)[0].1, "from-z:1");
}

#[test]
fn a_corrupt_or_missing_state_file_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(STATE_FILE);
    assert_eq!(SourceMemory::load(&path), SourceMemory::default());
    for bad in [
        &b"{ not json"[..],
        b"{\"version\": 99, \"files\": [], \"owners\": []}",
        b"\xff\xfe",
    ] {
        fs::write(&path, bad).unwrap();
        assert_eq!(SourceMemory::load(&path), SourceMemory::default());
        assert!(SourceMemory::from_bytes(bad).is_err());
    }
    // A pod that would not validate is no state to trust.
    let mut m = SourceMemory::default();
    write(d.path(), "p.yaml", &pod_yaml("p", "busybox:1"));
    scan(d.path(), &mut m);
    let text = String::from_utf8(m.to_bytes()).unwrap();
    let bad = text.replace("\"name\": \"c\"", "\"name\": \"Not A Name\"");
    assert_ne!(bad, text);
    assert!(SourceMemory::from_bytes(bad.as_bytes()).is_err());
}

#[test]
fn the_state_file_is_replaced_whole() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("state").join(STATE_FILE);
    write_atomically(&path, b"one").unwrap();
    write_atomically(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [STATE_FILE], "no temporary file is left");
}

// --- the debounce waits for writes to stop ----------------------------------------

#[test]
fn the_debounce_waits_for_a_quiet_period() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut d = Debounce::default();
    assert_eq!(d.wait(t0), None);
    assert!(!d.pending());
    d.event(t0);
    assert_eq!(d.wait(ms(10)), Some(Duration::from_millis(40)));
    // A write every 30 ms: the rescan waits for them to stop.
    for n in [30, 60, 90] {
        d.event(ms(n));
        assert_eq!(d.wait(ms(n)), Some(QUIET), "{n}");
    }
    assert_eq!(d.wait(ms(139)), Some(Duration::from_millis(1)));
    assert_eq!(d.wait(ms(140)), None, "50 ms without a write: due");
    assert!(d.pending());
    d.clear();
    assert!(!d.pending());
}

#[test]
fn the_debounce_gives_up_waiting_after_half_a_second() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut d = Debounce::default();
    for n in (0..=480).step_by(20) {
        d.event(ms(n));
        assert!(d.wait(ms(n)).is_some(), "{n}");
    }
    assert_eq!(d.wait(ms(490)), Some(Duration::from_millis(10)));
    d.event(ms(495));
    assert_eq!(
        d.wait(ms(500)),
        None,
        "due {MAX_DELAY:?} after the first event"
    );
}

// --- the actor --------------------------------------------------------------------

type Sets = Arc<std::sync::Mutex<Vec<SetDesired>>>;

fn start_source(dir: &Path, root: &Path) -> Sets {
    start_source_addr(dir, root).0
}

fn start_source_addr(dir: &Path, root: &Path) -> (Sets, actix::Addr<ManifestSource>) {
    let sets: Sets = Default::default();
    let sink = Sink(sets.clone()).start();
    let config = SourceConfig {
        dir: dir.to_path_buf(),
        node_name: "node-1".into(),
        every: Duration::from_secs(3600),
        root_dir: root.to_path_buf(),
        max_size: manifest::DEFAULT_MAX_SIZE,
    };
    let source = ManifestSource::new(config, sink.recipient()).start();
    (sets, source)
}

#[actix::test]
async fn a_rescan_answers_once_the_set_holding_the_write_is_taken_in() {
    let d = tempfile::tempdir().unwrap();
    let (dir, root) = (d.path().join("pods"), d.path().join("root"));
    fs::create_dir(&dir).unwrap();
    write(
        &dir,
        "two.yaml",
        &format!("{}---\n{}", pod_yaml("x", "i"), pod_yaml("z", "i")),
    );
    let (sets, source) = start_source_addr(&dir, &root);
    until("the first set", || !sets.lock().unwrap().is_empty()).await;

    write(&dir, "default_new.yaml", &pod_yaml("new", "i"));
    // No waiting for inotify: the answer comes after the set is taken in.
    tokio::time::timeout(Duration::from_secs(5), source.send(Rescan))
        .await
        .expect("the rescan answers")
        .unwrap();
    let names: Vec<String> = sets
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .pods
        .iter()
        .map(|p| p.pod.name().to_string())
        .collect();
    assert!(names.contains(&"new".to_string()), "{names:?}");

    let locate = |name: &str| {
        source.send(Locate {
            namespace: "default".into(),
            name: name.into(),
        })
    };
    let new = locate("new")
        .await
        .unwrap()
        .expect("the new pod is located");
    assert_eq!(
        (new.file, new.pods_in_file),
        (dir.join("default_new.yaml"), 1)
    );
    let x = locate("x").await.unwrap().expect("x is located");
    assert_eq!((x.file, x.pods_in_file), (dir.join("two.yaml"), 2));
    assert_eq!(locate("nowhere").await.unwrap(), None);
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sizes(sets: &Sets) -> Vec<usize> {
    sets.lock().unwrap().iter().map(|s| s.pods.len()).collect()
}

#[actix::test]
async fn truncating_and_rewriting_a_file_never_drops_its_pod() {
    let d = tempfile::tempdir().unwrap();
    let (dir, root) = (d.path().join("pods"), d.path().join("root"));
    fs::create_dir(&dir).unwrap();
    write(&dir, "p.yaml", &pod_yaml("p", "busybox:1"));
    let sets = start_source(&dir, &root);
    until("the first set", || !sets.lock().unwrap().is_empty()).await;
    until("the state file", || root.join(STATE_FILE).exists()).await;

    // `: > p.yaml; sleep; cat good > p.yaml`
    write(&dir, "p.yaml", "");
    until("the scan of the empty file", || {
        sets.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    write(&dir, "p.yaml", &pod_yaml("p", "busybox:1"));
    until("the scan of the rewritten file", || {
        sets.lock()
            .unwrap()
            .last()
            .is_some_and(|s| s.pods[0].problem.is_none())
    })
    .await;
    let got = sizes(&sets);
    assert!(
        got.iter().all(|n| *n == 1),
        "every set holds the pod: {got:?}"
    );
    let empty = sets.lock().unwrap()[1].pods[0].problem.clone();
    assert!(empty.is_some_and(|p| p.contains("empty")));

    // Broken while "down": a new source on the same root keeps the pod.
    write(&dir, "p.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    let again = start_source(&dir, &root);
    until("the restarted source's set", || {
        !again.lock().unwrap().is_empty()
    })
    .await;
    let first = &again.lock().unwrap()[0];
    assert_eq!(first.pods.len(), 1, "the pod of the broken file runs on");
    assert!(first.pods[0].problem.is_some());
}

// --- item 8: each odd entry is logged once ----------------------------------------

#[test]
fn each_problem_is_logged_once_and_again_only_when_it_changes() {
    let d = tempfile::tempdir().unwrap();
    let p = |f: &str| d.path().join(f);
    write(d.path(), "empty.yaml", "");
    write(d.path(), "comments.yaml", "# soon\n");
    write(d.path(), "bad.yaml", "{ not yaml");
    fs::create_dir(p("dir.yaml")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(p("fifo.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(p("loop.yaml"), p("loop.yaml")).unwrap();
    let mut m = SourceMemory::default();
    let mut reported = BTreeSet::new();
    let mut rescan = |m: &mut SourceMemory| {
        let result = manifest::scan_dir_preferring(d.path(), m.owners());
        let fresh = fresh_problems(&mut reported, m, &result);
        m.apply(&result);
        fresh
    };
    let first = rescan(&mut m);
    assert_eq!(first.len(), 6, "{first:#?}");
    for (file, level, words) in [
        ("empty.yaml", tracing::Level::INFO, "empty"),
        ("comments.yaml", tracing::Level::INFO, "empty"),
        ("bad.yaml", tracing::Level::ERROR, "bad manifest"),
        ("dir.yaml", tracing::Level::WARN, "is a directory"),
        ("fifo.yaml", tracing::Level::WARN, "is a FIFO"),
        ("loop.yaml", tracing::Level::WARN, "symlink loop"),
    ] {
        let path = p(file).display().to_string();
        let line = first
            .iter()
            .find(|(_, l)| l.contains(&path))
            .unwrap_or_else(|| panic!("no line for {file}: {first:#?}"));
        assert_eq!(line.0, level, "{line:?}");
        assert!(line.1.contains(words), "{line:?}");
    }
    assert!(rescan(&mut m).is_empty(), "nothing new: nothing logged");
    assert!(rescan(&mut m).is_empty());

    // A change is logged: the empty file gets a pod, then is emptied again
    // (now an error: its pod keeps running).
    write(d.path(), "empty.yaml", &pod_yaml("e", "busybox:1"));
    assert!(rescan(&mut m).is_empty(), "a fixed file is no problem");
    write(d.path(), "empty.yaml", "");
    let again = rescan(&mut m);
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0].0, tracing::Level::ERROR);
    assert!(again[0].1.contains("last good spec"), "{again:?}");
    assert!(rescan(&mut m).is_empty());
}

#[test]
fn a_desired_pod_shares_its_spec_with_the_parse() {
    // The reader's cache, the source's memory and the desired set hold
    // one copy of a pod between them, however many rescans there are.
    let parsed = manifest::parse_file(Path::new("p.yaml"), &pod_yaml("a", "one")).unwrap();
    let d = desired_from(parsed[0].clone(), "file", "node-a");
    assert!(Arc::ptr_eq(&d.pod, &parsed[0].pod), "the spec was copied");
    assert_eq!(
        d.uid,
        naming::derived_pod_uid("file", "node-a", "default", "a")
    );
    assert_eq!(d.pod.metadata.uid, None, "the spec is left as parsed");
    // A UID of the manifest's own is kept.
    let own = pod_yaml("b", "one").replace("  name: b\n", "  name: b\n  uid: my-uid\n");
    let parsed = manifest::parse_file(Path::new("p.yaml"), &own).unwrap();
    assert_eq!(
        desired_from(parsed[0].clone(), "file", "node-a").uid,
        "my-uid"
    );
}

#[actix::test]
async fn manifest_errors_are_counted_once_by_kind_and_broken_files_as_they_are() {
    let d = tempfile::tempdir().unwrap();
    let (dir, root) = (d.path().join("pods"), d.path().join("root"));
    fs::create_dir(&dir).unwrap();
    write(&dir, "good.yaml", &pod_yaml("good", "i"));
    write(&dir, "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let sets: Sets = Default::default();
    let sink = Sink(sets.clone()).start();
    let config = SourceConfig {
        dir: dir.clone(),
        node_name: "node-1".into(),
        every: Duration::from_secs(3600),
        root_dir: root,
        max_size: manifest::DEFAULT_MAX_SIZE,
    };
    let source = ManifestSource::new(config, sink.recipient())
        .with_metrics(metrics.clone())
        .start();
    until("the first set", || !sets.lock().unwrap().is_empty()).await;
    let syntax = || {
        metrics
            .manifest_errors
            .get_or_create(&[("kind", "syntax")])
            .get()
    };
    assert_eq!((syntax(), metrics.manifest_broken_files.get()), (1, 1));
    // Scanned again, still broken: not counted twice.
    let rescan = || tokio::time::timeout(Duration::from_secs(5), source.send(Rescan));
    rescan().await.unwrap().unwrap();
    assert_eq!((syntax(), metrics.manifest_broken_files.get()), (1, 1));
    // Fixed: no broken file left.
    write(&dir, "bad.yaml", &pod_yaml("fixed", "i"));
    rescan().await.unwrap().unwrap();
    assert_eq!((syntax(), metrics.manifest_broken_files.get()), (1, 0));
}
