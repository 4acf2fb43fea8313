//! The storage backend test suite: one set of behaviours, run against redb, sled and memory.
//!
//! Each behaviour is an `async fn(BackendKind)`; the macros at the bottom instantiate it once
//! per backend, so a failure names both the backend and the behaviour
//! (`sled::archive_ids_increase_across_reopen`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rempart::storage::{
    ArchiveRange, ArchiveStore, ArchiveUsage, BackendKind, EntryTags, ScanDirection, Storage,
    StorageError, Tree, WriteOp, SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// A storage and the directory it lives in; the storage is dropped first.
struct Opened {
    storage: Storage,
    dir: TempDir,
}

fn open(kind: BackendKind) -> Opened {
    let dir = TempDir::new().expect("temp dir");
    let storage = Storage::open(kind, dir.path()).expect("open storage");
    Opened { storage, dir }
}

fn reopen(kind: BackendKind, dir: &TempDir) -> Storage {
    Storage::open(kind, dir.path()).expect("reopen storage")
}

fn put(tree: Tree, key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put {
        tree,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn delete(tree: Tree, key: &[u8]) -> WriteOp {
    WriteOp::Delete {
        tree,
        key: key.to_vec(),
    }
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<&[u8]> {
    entries.iter().map(|(key, _)| key.as_slice()).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

fn note(text: &str) -> Note {
    Note {
        text: text.to_owned(),
    }
}

// ---- raw backend ----

async fn get_returns_what_put_stored(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend.apply(&[put(Tree::Kv, b"k", b"v1")]).expect("put");
    assert_eq!(
        backend.get(Tree::Kv, b"k").expect("get"),
        Some(b"v1".to_vec())
    );
    backend
        .apply(&[put(Tree::Kv, b"k", b"v2")])
        .expect("overwrite");
    assert_eq!(
        backend.get(Tree::Kv, b"k").expect("get"),
        Some(b"v2".to_vec())
    );
}

async fn get_of_a_missing_key_is_none(kind: BackendKind) {
    let opened = open(kind);
    assert_eq!(
        opened
            .storage
            .backend()
            .get(Tree::Map, b"nothing")
            .expect("get"),
        None
    );
}

async fn delete_removes_the_key_and_tolerates_absent_keys(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend.apply(&[put(Tree::Kv, b"k", b"v")]).expect("put");
    backend.apply(&[delete(Tree::Kv, b"k")]).expect("delete");
    assert_eq!(backend.get(Tree::Kv, b"k").expect("get"), None);
    backend
        .apply(&[delete(Tree::Kv, b"k")])
        .expect("delete absent");
}

async fn trees_are_independent(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend
        .apply(&[
            put(Tree::Kv, b"same", b"kv"),
            put(Tree::Archive, b"same", b"archive"),
        ])
        .expect("put");
    assert_eq!(
        backend.get(Tree::Kv, b"same").expect("get"),
        Some(b"kv".to_vec())
    );
    assert_eq!(
        backend.get(Tree::Archive, b"same").expect("get"),
        Some(b"archive".to_vec())
    );
    assert_eq!(backend.get(Tree::Map, b"same").expect("get"), None);
}

async fn scan_returns_only_prefix_keys_in_ascending_order(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend
        .apply(&[
            put(Tree::Map, b"p/c", b"3"),
            put(Tree::Map, b"o", b"before"),
            put(Tree::Map, b"p/a", b"1"),
            put(Tree::Map, b"q", b"after"),
            put(Tree::Map, b"p/b", b"2"),
            put(Tree::Map, b"p", b"prefix itself"),
        ])
        .expect("put");
    let entries = backend
        .scan_prefix(Tree::Map, b"p/", None, None)
        .expect("scan");
    assert_eq!(keys(&entries), [&b"p/a"[..], b"p/b", b"p/c"]);
    assert_eq!(entries[0].1, b"1");
    assert!(backend
        .scan_prefix(Tree::Map, b"z", None, None)
        .expect("scan")
        .is_empty());
}

async fn scan_after_starts_strictly_after_the_given_key(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend
        .apply(&[
            put(Tree::Map, b"p/a", b""),
            put(Tree::Map, b"p/b", b""),
            put(Tree::Map, b"p/c", b""),
        ])
        .expect("put");
    let entries = backend
        .scan_prefix(Tree::Map, b"p/", Some(b"p/a"), None)
        .expect("scan");
    assert_eq!(keys(&entries), [&b"p/b"[..], b"p/c"]);
    let between = backend
        .scan_prefix(Tree::Map, b"p/", Some(b"p/aa"), None)
        .expect("scan");
    assert_eq!(keys(&between), [&b"p/b"[..], b"p/c"]);
    let past = backend
        .scan_prefix(Tree::Map, b"p/", Some(b"p/c"), None)
        .expect("scan");
    assert!(past.is_empty());
    let beyond = backend
        .scan_prefix(Tree::Map, b"p/", Some(b"zzz"), None)
        .expect("scan");
    assert!(beyond.is_empty());
}

async fn scan_after_a_key_before_the_prefix_starts_at_the_prefix(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend
        .apply(&[
            put(Tree::Map, b"a", b""),
            put(Tree::Map, b"p/a", b""),
            put(Tree::Map, b"p/b", b""),
        ])
        .expect("put");
    let entries = backend
        .scan_prefix(Tree::Map, b"p/", Some(b"a"), None)
        .expect("scan");
    assert_eq!(keys(&entries), [&b"p/a"[..], b"p/b"]);
}

async fn scan_limit_caps_the_number_of_entries(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    let batch: Vec<WriteOp> = (0u8..10)
        .map(|i| put(Tree::Archive, &[b'p', i], b""))
        .collect();
    backend.apply(&batch).expect("put");
    let first = backend
        .scan_prefix(Tree::Archive, b"p", None, Some(3))
        .expect("scan");
    assert_eq!(keys(&first), [&[b'p', 0][..], &[b'p', 1], &[b'p', 2]]);
    let next = backend
        .scan_prefix(Tree::Archive, b"p", Some(&[b'p', 2]), Some(3))
        .expect("scan");
    assert_eq!(keys(&next), [&[b'p', 3][..], &[b'p', 4], &[b'p', 5]]);
    assert!(backend
        .scan_prefix(Tree::Archive, b"p", None, Some(0))
        .expect("scan")
        .is_empty());
    assert_eq!(
        backend
            .scan_prefix(Tree::Archive, b"p", None, Some(100))
            .expect("scan")
            .len(),
        10
    );
}

async fn batch_applies_all_writes_in_order(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    backend.apply(&[put(Tree::Kv, b"old", b"x")]).expect("put");
    backend
        .apply(&[
            put(Tree::Kv, b"a", b"1"),
            put(Tree::Map, b"b", b"2"),
            delete(Tree::Kv, b"old"),
            put(Tree::Kv, b"twice", b"first"),
            put(Tree::Kv, b"twice", b"second"),
            put(Tree::Kv, b"gone", b"x"),
            delete(Tree::Kv, b"gone"),
        ])
        .expect("batch");
    assert_eq!(
        backend.get(Tree::Kv, b"a").expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        backend.get(Tree::Map, b"b").expect("get"),
        Some(b"2".to_vec())
    );
    assert_eq!(backend.get(Tree::Kv, b"old").expect("get"), None);
    assert_eq!(
        backend.get(Tree::Kv, b"twice").expect("get"),
        Some(b"second".to_vec())
    );
    assert_eq!(backend.get(Tree::Kv, b"gone").expect("get"), None);
    backend.apply(&[]).expect("empty batch");
}

async fn batch_is_never_seen_half_applied(kind: BackendKind) {
    let opened = open(kind);
    let backend = opened.storage.backend();
    let round = |value: u32| -> Vec<WriteOp> {
        (0u8..64)
            .map(|i| put(Tree::Map, &[b'r', i], &value.to_be_bytes()))
            .collect()
    };
    backend.apply(&round(0)).expect("first round");
    // The writer keeps committing rounds until the reader has seen enough of them change
    // under it: the reads below provably ran while batches were being applied.
    const ROUNDS_TO_SEE: usize = 20;
    const MAX_ROUNDS: u32 = 1_000_000;
    let reader_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let backend = Arc::clone(&backend);
        let reader_done = Arc::clone(&reader_done);
        std::thread::spawn(move || {
            let mut value = 1;
            while !reader_done.load(Ordering::Acquire) {
                assert!(value < MAX_ROUNDS, "the reader never saw the rounds change");
                backend.apply(&round(value)).expect("round");
                value += 1;
            }
        })
    };
    let mut seen = BTreeSet::new();
    while seen.len() < ROUNDS_TO_SEE && !writer.is_finished() {
        let entries = backend
            .scan_prefix(Tree::Map, b"r", None, None)
            .expect("scan");
        assert_eq!(entries.len(), 64);
        let values: BTreeSet<&Vec<u8>> = entries.iter().map(|(_, value)| value).collect();
        assert_eq!(values.len(), 1, "a reader saw a batch half applied");
        seen.extend(values.into_iter().cloned());
    }
    reader_done.store(true, Ordering::Release);
    writer
        .join()
        .expect("the writer ran until the reader was done");
    assert!(
        seen.len() >= ROUNDS_TO_SEE,
        "the reader saw only {} rounds",
        seen.len()
    );
}

async fn schema_version_is_written_on_open(kind: BackendKind) {
    let opened = open(kind);
    let stored = opened
        .storage
        .backend()
        .get(Tree::Meta, b"schema_version")
        .expect("get");
    assert_eq!(stored, Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
}

/// Environment variables that make the ignored test `flush_writer_child` write into a store.
const CHILD_DIR: &str = "STORAGE_TEST_FLUSH_CHILD_DIR";
const CHILD_BACKEND: &str = "STORAGE_TEST_FLUSH_CHILD_BACKEND";

async fn flushed_data_is_read_by_a_fresh_process_after_kill_9(kind: BackendKind) {
    let dir = TempDir::new().expect("temp dir");
    // `Redb` -> `redb`: the name the configuration (and the child's parser) uses.
    let backend_name = format!("{kind:?}").to_lowercase();
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "flush_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_BACKEND, &backend_name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("child process starts");
    let stdout = child.stdout.take().expect("stdout");
    let (flushed_tx, flushed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let flushed = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "flushed");
        let _ = flushed_tx.send(flushed);
    });
    let flushed = flushed_rx.recv_timeout(std::time::Duration::from_secs(60));
    // The child waits forever once flushed: it dies here, its store never closed.
    child.kill().expect("SIGKILL");
    child.wait().expect("child reaped");
    assert_eq!(
        flushed,
        Ok(true),
        "the child process never reported its flush"
    );
    let storage = reopen(kind, &dir);
    assert_eq!(
        storage.kv::<Note>("h", "m").get("alice").await.expect("kv"),
        Some(note("flushed"))
    );
}

/// Not a test of its own: the writer process of
/// `flushed_data_is_read_by_a_fresh_process_after_kill_9`, which runs it with the store's
/// location in the environment.
#[tokio::test]
#[ignore = "the child process of flushed_data_is_read_by_a_fresh_process_after_kill_9"]
async fn flush_writer_child() {
    let dir = std::env::var(CHILD_DIR).expect("run by a parent test, which sets the directory");
    let backend = std::env::var(CHILD_BACKEND).expect("run by a parent test");
    let kind: BackendKind = serde_json::from_str(&format!("\"{backend}\"")).expect("backend name");
    let storage = Storage::open(kind, std::path::Path::new(&dir)).expect("open");
    storage
        .kv::<Note>("h", "m")
        .set("alice", &note("flushed"))
        .await
        .expect("set");
    storage.flush().await.expect("flush");
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "\nflushed").expect("stdout");
    out.flush().expect("stdout");
    // Keep the store open until the parent kills this process.
    std::future::pending::<()>().await;
}

// ---- typed stores ----

async fn kv_set_get_delete_round_trip(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.kv::<Note>("example.org", "vcard");
    assert_eq!(store.get("alice").await.expect("get"), None);
    store.set("alice", &note("hello")).await.expect("set");
    assert_eq!(store.get("alice").await.expect("get"), Some(note("hello")));
    store.set("alice", &note("again")).await.expect("overwrite");
    assert_eq!(store.get("alice").await.expect("get"), Some(note("again")));
    store.delete("alice").await.expect("delete");
    assert_eq!(store.get("alice").await.expect("get"), None);
    store.delete("alice").await.expect("delete absent");
}

async fn kv_users_lists_users_with_a_value_sorted(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.kv::<u32>("example.org", "vcard");
    for user in ["carol", "alice", "bob", "alice.b", ""] {
        store.set(user, &1).await.expect("set");
    }
    store.delete("bob").await.expect("delete");
    opened
        .storage
        .kv::<u32>("example.org", "other")
        .set("zed", &1)
        .await
        .expect("set");
    opened
        .storage
        .kv::<u32>("example.net", "vcard")
        .set("yan", &1)
        .await
        .expect("set");
    let users = store.users().await.expect("users");
    assert_eq!(users, ["", "alice", "alice.b", "carol"]);
}

async fn stores_are_scoped_by_host_and_module(kind: BackendKind) {
    let opened = open(kind);
    let storage = &opened.storage;
    storage
        .kv::<u32>("a.example", "m")
        .set("u", &1)
        .await
        .expect("set");
    storage
        .kv::<u32>("b.example", "m")
        .set("u", &2)
        .await
        .expect("set");
    storage
        .kv::<u32>("a.example", "n")
        .set("u", &3)
        .await
        .expect("set");
    storage
        .kv::<u32>("a.example", "m")
        .set("", &4)
        .await
        .expect("set host-wide");
    assert_eq!(
        storage
            .kv::<u32>("a.example", "m")
            .get("u")
            .await
            .expect("get"),
        Some(1)
    );
    assert_eq!(
        storage
            .kv::<u32>("b.example", "m")
            .get("u")
            .await
            .expect("get"),
        Some(2)
    );
    assert_eq!(
        storage
            .kv::<u32>("a.example", "n")
            .get("u")
            .await
            .expect("get"),
        Some(3)
    );
    assert_eq!(
        storage
            .kv::<u32>("a.example", "m")
            .get("")
            .await
            .expect("get"),
        Some(4)
    );
    storage
        .map::<u32>("a.example", "m")
        .set("u", "k", &5)
        .await
        .expect("set");
    assert_eq!(
        storage
            .map::<u32>("a.example", "n")
            .get("u", "k")
            .await
            .expect("get"),
        None
    );
}

async fn kv_value_of_the_wrong_type_is_a_codec_error(kind: BackendKind) {
    let opened = open(kind);
    opened
        .storage
        .kv::<String>("h", "m")
        .set("u", &"text".to_owned())
        .await
        .expect("set");
    let read = opened.storage.kv::<u32>("h", "m").get("u").await;
    assert!(matches!(read, Err(StorageError::Codec(_))), "{read:?}");
}

async fn map_set_get_delete_round_trip(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.map::<Note>("example.org", "roster");
    assert_eq!(
        store.get("alice", "bob@example.org").await.expect("get"),
        None
    );
    store
        .set("alice", "bob@example.org", &note("Bob"))
        .await
        .expect("set");
    assert_eq!(
        store.get("alice", "bob@example.org").await.expect("get"),
        Some(note("Bob"))
    );
    assert_eq!(
        store.get("bob", "bob@example.org").await.expect("get"),
        None
    );
    store
        .delete("alice", "bob@example.org")
        .await
        .expect("delete");
    assert_eq!(
        store.get("alice", "bob@example.org").await.expect("get"),
        None
    );
}

async fn map_all_is_sorted_by_key_and_limited_to_the_user(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.map::<u32>("example.org", "roster");
    store.set("alice", "zoe", &3).await.expect("set");
    store.set("alice", "bob", &1).await.expect("set");
    store.set("alice", "carl", &2).await.expect("set");
    store.set("alice.b", "other", &9).await.expect("set");
    store.set("", "host-wide", &9).await.expect("set");
    let all = store.all("alice").await.expect("all");
    assert_eq!(
        all,
        [
            ("bob".to_owned(), 1),
            ("carl".to_owned(), 2),
            ("zoe".to_owned(), 3)
        ]
    );
    assert!(store.all("nobody").await.expect("all").is_empty());
}

async fn map_apply_puts_and_deletes_together(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.map::<u32>("example.org", "roster");
    store.set("alice", "old", &0).await.expect("set");
    store
        .apply(
            "alice",
            vec![
                ("a".to_owned(), Some(1)),
                ("old".to_owned(), None),
                ("b".to_owned(), Some(2)),
            ],
        )
        .await
        .expect("apply");
    let all = store.all("alice").await.expect("all");
    assert_eq!(all, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
}

async fn map_delete_all_removes_only_that_user(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.map::<u32>("example.org", "roster");
    store.set("alice", "a", &1).await.expect("set");
    store.set("alice", "b", &2).await.expect("set");
    store.set("alice.b", "a", &3).await.expect("set");
    store.delete_all("alice").await.expect("delete all");
    assert!(store.all("alice").await.expect("all").is_empty());
    assert_eq!(
        store.all("alice.b").await.expect("all"),
        [("a".to_owned(), 3)]
    );
}

async fn archive_list_is_ascending_and_honours_after_and_limit(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<Note>("example.org", "mam");
    let mut ids = Vec::new();
    for text in ["one", "two", "three", "four"] {
        ids.push(
            store
                .append("alice", &note(text), None)
                .await
                .expect("append"),
        );
    }
    store
        .append("bob", &note("other"), None)
        .await
        .expect("append");
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    let all = store.list("alice", None, 100).await.expect("list");
    let texts: Vec<&str> = all.iter().map(|(_, entry)| entry.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    let page = store.list("alice", Some(ids[0]), 2).await.expect("list");
    assert_eq!(
        page.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ids[1], ids[2]]
    );
    assert!(store
        .list("alice", Some(ids[3]), 10)
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .list("nobody", None, 10)
        .await
        .expect("list")
        .is_empty());
}

async fn archive_count_delete_and_delete_all(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "offline");
    let mut ids = Vec::new();
    for value in 0..5 {
        ids.push(store.append("alice", &value, None).await.expect("append"));
    }
    store.append("bob", &9, None).await.expect("append");
    assert_eq!(store.count("alice").await.expect("count"), 5);
    store
        .delete("alice", &[ids[1], ids[3], 12345])
        .await
        .expect("delete");
    let left: Vec<u32> = store
        .list("alice", None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    assert_eq!(left, [0, 2, 4]);
    store.delete_all("alice").await.expect("delete all");
    assert_eq!(store.count("alice").await.expect("count"), 0);
    assert_eq!(store.count("bob").await.expect("count"), 1);
}

async fn archive_get_reads_one_entry_of_that_user_only(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "mam");
    let id = store.append("alice", &7, None).await.expect("append");
    assert_eq!(store.get("alice", id).await.expect("get"), Some(7));
    assert_eq!(store.get("bob", id).await.expect("get"), None);
    store.delete("alice", &[id]).await.expect("delete");
    assert_eq!(store.get("alice", id).await.expect("get"), None);
}

async fn archive_append_limited_refuses_when_full(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "offline");
    for value in 0..3 {
        let id = store
            .append_limited("alice", &value, 3)
            .await
            .expect("append");
        assert!(id.is_some());
    }
    assert_eq!(
        store.append_limited("alice", &3, 3).await.expect("append"),
        None
    );
    assert_eq!(store.count("alice").await.expect("count"), 3);
    assert!(store
        .append_limited("bob", &0, 3)
        .await
        .expect("append")
        .is_some());
    assert_eq!(
        store.append_limited("carol", &0, 0).await.expect("append"),
        None
    );
    let first = store.list("alice", None, 1).await.expect("list")[0].0;
    store.delete("alice", &[first]).await.expect("delete");
    assert!(store
        .append_limited("alice", &4, 3)
        .await
        .expect("append")
        .is_some());
}

async fn archive_append_limited_is_race_free(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "offline");
    let mut tasks = Vec::new();
    for value in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append_limited("alice", &value, 5).await
        }));
    }
    let mut written = 0;
    for task in tasks {
        if task.await.expect("task").expect("append").is_some() {
            written += 1;
        }
    }
    assert_eq!(written, 5);
    assert_eq!(store.count("alice").await.expect("count"), 5);
}

async fn archive_ids_are_unique_under_concurrent_appends(kind: BackendKind) {
    let opened = open(kind);
    let mut tasks = Vec::new();
    for task in 0..4 {
        let store = opened.storage.archive::<u32>("example.org", "mam");
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for value in 0..10 {
                ids.push(
                    store
                        .append(&format!("user{task}"), &value, None)
                        .await
                        .expect("append"),
                );
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        let ids = task.await.expect("task");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        all.extend(ids);
    }
    assert_eq!(all.len(), 40);
}

async fn delete_user_removes_everything_of_that_user_only(kind: BackendKind) {
    let opened = open(kind);
    let storage = &opened.storage;
    for (host, user) in [
        ("example.org", "alice"),
        ("example.org", "alice.b"),
        ("example.org", "bob"),
        ("example.org", ""),
        ("example.net", "alice"),
    ] {
        for module in ["roster", "vcard", "zz"] {
            storage
                .kv::<u32>(host, module)
                .set(user, &1)
                .await
                .expect("kv");
            storage
                .map::<u32>(host, module)
                .set(user, "k", &1)
                .await
                .expect("map");
            storage
                .archive::<u32>(host, module)
                .append(user, &1, None)
                .await
                .expect("archive");
        }
    }
    storage
        .delete_user("example.org", "alice")
        .await
        .expect("delete user");
    for module in ["roster", "vcard", "zz"] {
        let kv = storage.kv::<u32>("example.org", module);
        let map = storage.map::<u32>("example.org", module);
        let archive = storage.archive::<u32>("example.org", module);
        assert_eq!(kv.get("alice").await.expect("kv"), None);
        assert!(map.all("alice").await.expect("map").is_empty());
        assert_eq!(archive.count("alice").await.expect("archive"), 0);
        for kept in ["alice.b", "bob", ""] {
            assert_eq!(kv.get(kept).await.expect("kv"), Some(1), "{module} {kept}");
            assert_eq!(
                map.all(kept).await.expect("map").len(),
                1,
                "{module} {kept}"
            );
            assert_eq!(
                archive.count(kept).await.expect("archive"),
                1,
                "{module} {kept}"
            );
        }
        let other_host = storage.kv::<u32>("example.net", module);
        assert_eq!(other_host.get("alice").await.expect("kv"), Some(1));
    }
}

async fn a_nul_byte_in_a_name_is_refused(kind: BackendKind) {
    let opened = open(kind);
    let storage = &opened.storage;
    let set = storage
        .kv::<u32>("example.org", "m")
        .set("al\0ice", &1)
        .await;
    assert!(
        matches!(set, Err(StorageError::InvalidKeyPart("user"))),
        "{set:?}"
    );
    let list = storage
        .archive::<u32>("exa\0mple.org", "m")
        .list("alice", None, 1)
        .await;
    assert!(
        matches!(list, Err(StorageError::InvalidKeyPart("host"))),
        "{list:?}"
    );
    let users = storage.kv::<u32>("example.org", "m\0").users().await;
    assert!(
        matches!(users, Err(StorageError::InvalidKeyPart("module"))),
        "{users:?}"
    );
    let deleted = storage.delete_user("example.org", "\0").await;
    assert!(
        matches!(deleted, Err(StorageError::InvalidKeyPart("user"))),
        "{deleted:?}"
    );
}

async fn scan_range_reads_both_ways_between_bounds(kind: BackendKind) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let opened = open(kind);
    let backend = opened.storage.backend();
    let batch: Vec<WriteOp> = (0u8..6)
        .map(|i| put(Tree::Archive, &[b'r', i], &[i]))
        .collect();
    backend.apply(&batch).expect("put");
    let (two, five): (&[u8], &[u8]) = (&[b'r', 2], &[b'r', 5]);
    let up = backend
        .scan_range(
            Tree::Archive,
            Excluded(two),
            Included(five),
            ScanDirection::Ascending,
            None,
        )
        .expect("scan");
    assert_eq!(keys(&up), [&[b'r', 3][..], &[b'r', 4], &[b'r', 5]]);
    let down = backend
        .scan_range(
            Tree::Archive,
            Included(two),
            Excluded(five),
            ScanDirection::Descending,
            Some(2),
        )
        .expect("scan");
    assert_eq!(keys(&down), [&[b'r', 4][..], &[b'r', 3]]);
    let last = backend
        .scan_range(
            Tree::Archive,
            Unbounded,
            Unbounded,
            ScanDirection::Descending,
            Some(1),
        )
        .expect("scan");
    assert_eq!(keys(&last), [&[b'r', 5][..]]);
    let inverted = backend
        .scan_range(
            Tree::Archive,
            Included(five),
            Excluded(two),
            ScanDirection::Ascending,
            None,
        )
        .expect("an inverted range is empty, not an error");
    assert!(inverted.is_empty());
}

/// Appends `count` numbered entries for alice, alternating partners a@x and b@x.
async fn fill(store: &ArchiveStore<u32>, count: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    for value in 0..count {
        let partner = if value % 2 == 0 { "a@x" } else { "b@x" };
        ids.push(
            store
                .append("alice", &value, Some(partner))
                .await
                .expect("append"),
        );
    }
    ids
}

fn values<T: Copy>(entries: &[(u64, T)]) -> Vec<T> {
    entries.iter().map(|(_, value)| *value).collect()
}

async fn archive_query_pages_both_ways_within_after_and_before(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "mam");
    let ids = fill(&store, 10).await;
    store.append("bob", &99, None).await.expect("append");
    let newest = store
        .query(
            "alice",
            &ArchiveRange {
                newest_first: true,
                limit: 3,
                ..ArchiveRange::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(values(&newest.entries), [9, 8, 7]);
    assert!(!newest.complete);
    let older = store
        .query(
            "alice",
            &ArchiveRange {
                before: Some(newest.entries[2].0),
                newest_first: true,
                limit: 10,
                ..ArchiveRange::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(values(&older.entries), [6, 5, 4, 3, 2, 1, 0]);
    assert!(older.complete);
    let between = store
        .query(
            "alice",
            &ArchiveRange {
                after: Some(ids[2]),
                before: Some(ids[6]),
                limit: 3,
                ..ArchiveRange::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(values(&between.entries), [3, 4, 5]);
    assert!(
        between.complete,
        "exactly the three entries between the bounds"
    );
    let empty = store
        .query(
            "alice",
            &ArchiveRange {
                after: Some(ids[6]),
                before: Some(ids[2]),
                limit: 5,
                ..ArchiveRange::default()
            },
        )
        .await
        .expect("an inverted range is empty");
    assert!(empty.entries.is_empty() && empty.complete);
}

async fn archive_query_with_a_partner_reads_only_that_conversation(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "mam");
    let ids = fill(&store, 10).await;
    let with_b = |after, newest_first| ArchiveRange {
        after,
        with: Some("b@x".to_owned()),
        newest_first,
        limit: 3,
        ..ArchiveRange::default()
    };
    let newest = store
        .query("alice", &with_b(None, true))
        .await
        .expect("query");
    assert_eq!(values(&newest.entries), [9, 7, 5]);
    assert!(!newest.complete);
    let rest = store
        .query("alice", &with_b(Some(ids[4]), false))
        .await
        .expect("query");
    assert_eq!(values(&rest.entries), [5, 7, 9]);
    assert!(rest.complete);
    store.delete("alice", &[ids[7]]).await.expect("delete");
    let after_delete = store
        .query("alice", &with_b(Some(ids[4]), false))
        .await
        .expect("query");
    assert_eq!(values(&after_delete.entries), [5, 9]);
    let nobody = ArchiveRange {
        with: Some("c@x".to_owned()),
        limit: 5,
        ..ArchiveRange::default()
    };
    let none = store.query("alice", &nobody).await.expect("query");
    assert!(none.entries.is_empty() && none.complete);
    store.delete_all("alice").await.expect("delete all");
    let cleared = store
        .query("alice", &with_b(None, false))
        .await
        .expect("query");
    assert!(cleared.entries.is_empty());
    let raw = opened
        .storage
        .backend()
        .scan_prefix(
            Tree::ArchiveByPartner,
            b"example.org\0mam\0alice\0",
            None,
            None,
        )
        .expect("scan");
    assert!(raw.is_empty(), "deleting entries deletes their index keys");
}

/// The stored size of `value`, as the counters count it.
fn stored_size(value: u32) -> u64 {
    serde_json::to_vec(&value).expect("json").len() as u64
}

async fn archive_counters_follow_appends_and_deletes(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "mam");
    let ids = fill(&store, 12).await;
    let all: u64 = (0..12).map(stored_size).sum();
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage {
            entries: 12,
            bytes: all
        }
    );
    assert_eq!(
        store
            .usage("alice", Some("a@x"))
            .await
            .expect("usage")
            .entries,
        6
    );
    store
        .delete("alice", &[ids[10], ids[11], ids[11], 42])
        .await
        .expect("delete");
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage {
            entries: 10,
            bytes: all - stored_size(10) - stored_size(11)
        }
    );
    assert_eq!(store.count("alice").await.expect("count"), 10);
    assert_eq!(
        store
            .usage("alice", Some("b@x"))
            .await
            .expect("usage")
            .entries,
        5
    );
    store.delete_all("alice").await.expect("delete all");
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage::default()
    );
    assert_eq!(
        store.usage("alice", Some("a@x")).await.expect("usage"),
        ArchiveUsage::default()
    );
}

async fn archive_append_if_sees_the_partner_and_class_it_would_join(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "offline");
    let stranger = |partner: &str| EntryTags {
        partner: Some(partner.to_owned()),
        class: Some("stranger".to_owned()),
    };
    // At most two entries per partner and three strangers' entries in all, checked by many
    // writers at once: the checks see the writes queued before them in the same batch.
    let mut tasks = Vec::new();
    for value in 0..12u32 {
        let store = store.clone();
        let tags = stranger(if value % 3 == 0 { "a@x" } else { "b@x" });
        tasks.push(tokio::spawn(async move {
            store
                .append_if("alice", &value, tags, |held| {
                    held.partner.entries < 2 && held.class.entries < 3
                })
                .await
        }));
    }
    let mut written = 0;
    for task in tasks {
        if task.await.expect("task").expect("append").is_some() {
            written += 1;
        }
    }
    assert_eq!(written, 3);
    assert_eq!(store.count("alice").await.expect("count"), 3);
    assert!(
        store
            .usage("alice", Some("a@x"))
            .await
            .expect("usage")
            .entries
            <= 2
    );
    let held_seen = store
        .append_if("alice", &7, EntryTags::default(), |held| {
            held.user.entries == 3 && held.partner.entries == 0 && held.entry_bytes == 1
        })
        .await
        .expect("append");
    assert!(
        held_seen.is_some(),
        "an entry without tags sees only the user's total"
    );
}

async fn a_failing_check_answers_only_its_writer(kind: BackendKind) {
    let opened = open(kind);
    let store = opened.storage.archive::<u32>("example.org", "mam");
    let mut tasks = Vec::new();
    for value in 0..30u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_if("alice", &value, EntryTags::default(), move |_| {
                    assert!(value != 13, "a check that fails hard");
                    value % 5 != 0
                })
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    for (value, outcome) in outcomes.iter().enumerate() {
        match value {
            13 => assert!(
                matches!(outcome, Err(StorageError::TaskFailed)),
                "{outcome:?}"
            ),
            value if value % 5 == 0 => assert!(matches!(outcome, Ok(None)), "{outcome:?}"),
            _ => assert!(matches!(outcome, Ok(Some(_))), "{value}: {outcome:?}"),
        }
    }
    let stored = store.list("alice", None, 100).await.expect("list");
    let expected: Vec<u32> = (0..30)
        .filter(|value| value % 5 != 0 && *value != 13)
        .collect();
    let mut got = values(&stored);
    got.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(store.count("alice").await.expect("count"), expected.len());
}

async fn many_concurrent_writers_are_all_answered_and_read_back(kind: BackendKind) {
    let opened = open(kind);
    let storage = &opened.storage;
    let mut tasks = Vec::new();
    for task in 0..50u32 {
        let storage = storage.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("user{task}");
            let archive = storage.archive::<u32>("example.org", "mam");
            let mut ids = Vec::new();
            for value in 0..20 {
                ids.push(
                    archive
                        .append(&user, &value, Some("peer@x"))
                        .await
                        .expect("append"),
                );
            }
            storage
                .kv::<u32>("example.org", "kv")
                .set(&user, &task)
                .await
                .expect("kv");
            storage
                .map::<u32>("example.org", "map")
                .set(&user, "k", &task)
                .await
                .expect("map");
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        let ids = handle.await.expect("task");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        all.extend(ids.iter().copied());
        let user = format!("user{task}");
        let listed = storage
            .archive::<u32>("example.org", "mam")
            .list(&user, None, 100)
            .await
            .expect("list");
        assert_eq!(listed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
        assert_eq!(values(&listed), (0..20).collect::<Vec<u32>>());
    }
    assert_eq!(all.len(), 50 * 20, "ids are unique");
}

// ---- on-disk backends only ----

async fn data_survives_reopen(kind: BackendKind) {
    let dir = TempDir::new().expect("temp dir");
    let data_dir = dir.path().join("not").join("yet").join("there");
    {
        let storage = Storage::open(kind, &data_dir).expect("open");
        storage
            .backend()
            .apply(&[put(Tree::Map, b"raw", b"value")])
            .expect("put");
        storage
            .kv::<Note>("h", "m")
            .set("alice", &note("kv"))
            .await
            .expect("kv");
        storage
            .map::<Note>("h", "m")
            .set("alice", "k", &note("map"))
            .await
            .expect("map");
        storage
            .archive::<Note>("h", "m")
            .append("alice", &note("archive"), None)
            .await
            .expect("archive");
    }
    let storage = Storage::open(kind, &data_dir).expect("reopen");
    assert_eq!(
        storage.backend().get(Tree::Map, b"raw").expect("get"),
        Some(b"value".to_vec())
    );
    assert_eq!(
        storage.kv::<Note>("h", "m").get("alice").await.expect("kv"),
        Some(note("kv"))
    );
    assert_eq!(
        storage
            .map::<Note>("h", "m")
            .get("alice", "k")
            .await
            .expect("map"),
        Some(note("map"))
    );
    let entries = storage
        .archive::<Note>("h", "m")
        .list("alice", None, 10)
        .await
        .expect("archive");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, note("archive"));
}

async fn group_commit_writes_of_many_writers_survive_reopen(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    let mut tasks = Vec::new();
    for task in 0..100u32 {
        let storage = storage.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("user{task}");
            let id = storage
                .archive::<u32>("h", "mam")
                .append(&user, &task, Some("peer@x"))
                .await
                .expect("append");
            storage
                .kv::<u32>("h", "kv")
                .set(&user, &task)
                .await
                .expect("kv");
            id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("every writer is answered"));
    }
    drop(storage);
    let storage = reopen(kind, &dir);
    for (task, id) in (0..100u32).zip(ids) {
        let user = format!("user{task}");
        let archive = storage.archive::<u32>("h", "mam");
        assert_eq!(
            archive.list(&user, None, 10).await.expect("list"),
            [(id, task)]
        );
        assert_eq!(
            archive
                .usage(&user, Some("peer@x"))
                .await
                .expect("usage")
                .entries,
            1
        );
        assert_eq!(
            storage.kv::<u32>("h", "kv").get(&user).await.expect("kv"),
            Some(task)
        );
    }
}

async fn archive_counters_survive_reopen(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    let store = storage.archive::<u32>("h", "mam");
    let ids = fill(&store, 4).await;
    store.delete("alice", &[ids[0]]).await.expect("delete");
    drop(store);
    drop(storage);
    let storage = reopen(kind, &dir);
    let store = storage.archive::<u32>("h", "mam");
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage {
            entries: 3,
            bytes: (1..4).map(stored_size).sum()
        }
    );
    assert_eq!(
        store
            .usage("alice", Some("a@x"))
            .await
            .expect("usage")
            .entries,
        1
    );
}

async fn entries_stored_before_counters_are_counted_after_upgrade(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    // What schema 1 left: entries under `user_prefix id`, no counters.
    let entry = |user: &str, id: u64, value: &[u8]| {
        let mut key = format!("h\0offline\0{user}\0").into_bytes();
        key.extend_from_slice(&id.to_be_bytes());
        put(Tree::Archive, &key, value)
    };
    storage
        .backend()
        .apply(&[
            entry("alice", 1, b"10"),
            entry("alice", 2, b"200"),
            entry("bob", 3, b"3"),
            put(Tree::Meta, b"schema_version", &1u32.to_be_bytes()),
        ])
        .expect("put");
    drop(storage);
    let storage = reopen(kind, &dir);
    let store = storage.archive::<u32>("h", "offline");
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage {
            entries: 2,
            bytes: 5
        }
    );
    assert_eq!(store.count("bob").await.expect("count"), 1);
    store.delete("alice", &[1]).await.expect("delete");
    assert_eq!(
        store.usage("alice", None).await.expect("usage"),
        ArchiveUsage {
            entries: 1,
            bytes: 3
        }
    );
    assert_eq!(
        storage
            .backend()
            .get(Tree::Meta, b"schema_version")
            .expect("get"),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

async fn newer_schema_version_is_refused(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    let newer = SCHEMA_VERSION + 1;
    storage
        .backend()
        .apply(&[put(Tree::Meta, b"schema_version", &newer.to_be_bytes())])
        .expect("put");
    drop(storage);
    let reopened = Storage::open(kind, dir.path());
    assert!(
        matches!(
            reopened,
            Err(StorageError::SchemaTooNew { found, supported })
                if found == newer && supported == SCHEMA_VERSION
        ),
        "{reopened:?}"
    );
}

async fn current_schema_version_is_kept_on_reopen(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    drop(storage);
    let storage = reopen(kind, &dir);
    let stored = storage
        .backend()
        .get(Tree::Meta, b"schema_version")
        .expect("get");
    assert_eq!(stored, Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
}

async fn archive_ids_increase_across_reopen(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    let first = storage
        .archive::<u32>("h", "m")
        .append("alice", &1, None)
        .await
        .expect("append");
    drop(storage);
    let storage = reopen(kind, &dir);
    let second = storage
        .archive::<u32>("h", "m")
        .append("alice", &2, None)
        .await
        .expect("append");
    assert!(first < second, "{first} then {second}");
    let listed = storage
        .archive::<u32>("h", "m")
        .list("alice", None, 10)
        .await
        .expect("list");
    assert_eq!(listed, [(first, 1), (second, 2)]);
}

async fn archive_ids_stay_above_the_recorded_highest_id(kind: BackendKind) {
    let Opened { storage, dir } = open(kind);
    // Far past any clock: only the recorded highest id can push new ids above it.
    let recorded = u64::MAX / 2;
    storage
        .backend()
        .apply(&[put(Tree::Meta, b"archive_last_id", &recorded.to_be_bytes())])
        .expect("put");
    drop(storage);
    let storage = reopen(kind, &dir);
    let id = storage
        .archive::<u32>("h", "m")
        .append("alice", &1, None)
        .await
        .expect("append");
    assert_eq!(id, recorded + 1);
}

// ---- one module per backend ----

macro_rules! run_with {
    ($kind:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                super::$behaviour($kind).await;
            }
        )*
    };
}

macro_rules! every_backend {
    ($($behaviour:ident),* $(,)?) => {
        mod redb {
            run_with!(rempart::storage::BackendKind::Redb; $($behaviour),*);
        }
        #[cfg(feature = "sled")]
        mod sled {
            run_with!(rempart::storage::BackendKind::Sled; $($behaviour),*);
        }
        mod memory {
            run_with!(rempart::storage::BackendKind::Memory; $($behaviour),*);
        }
    };
}

macro_rules! disk_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod redb_on_disk {
            run_with!(rempart::storage::BackendKind::Redb; $($behaviour),*);
        }
        #[cfg(feature = "sled")]
        mod sled_on_disk {
            run_with!(rempart::storage::BackendKind::Sled; $($behaviour),*);
        }
    };
}

every_backend!(
    get_returns_what_put_stored,
    get_of_a_missing_key_is_none,
    delete_removes_the_key_and_tolerates_absent_keys,
    trees_are_independent,
    scan_returns_only_prefix_keys_in_ascending_order,
    scan_after_starts_strictly_after_the_given_key,
    scan_after_a_key_before_the_prefix_starts_at_the_prefix,
    scan_limit_caps_the_number_of_entries,
    batch_applies_all_writes_in_order,
    batch_is_never_seen_half_applied,
    schema_version_is_written_on_open,
    kv_set_get_delete_round_trip,
    kv_users_lists_users_with_a_value_sorted,
    stores_are_scoped_by_host_and_module,
    kv_value_of_the_wrong_type_is_a_codec_error,
    map_set_get_delete_round_trip,
    map_all_is_sorted_by_key_and_limited_to_the_user,
    map_apply_puts_and_deletes_together,
    map_delete_all_removes_only_that_user,
    archive_list_is_ascending_and_honours_after_and_limit,
    archive_count_delete_and_delete_all,
    archive_get_reads_one_entry_of_that_user_only,
    archive_append_limited_refuses_when_full,
    archive_append_limited_is_race_free,
    archive_ids_are_unique_under_concurrent_appends,
    delete_user_removes_everything_of_that_user_only,
    a_nul_byte_in_a_name_is_refused,
    scan_range_reads_both_ways_between_bounds,
    archive_query_pages_both_ways_within_after_and_before,
    archive_query_with_a_partner_reads_only_that_conversation,
    archive_counters_follow_appends_and_deletes,
    archive_append_if_sees_the_partner_and_class_it_would_join,
    a_failing_check_answers_only_its_writer,
    many_concurrent_writers_are_all_answered_and_read_back,
);

disk_backends!(
    data_survives_reopen,
    flushed_data_is_read_by_a_fresh_process_after_kill_9,
    newer_schema_version_is_refused,
    current_schema_version_is_kept_on_reopen,
    archive_ids_increase_across_reopen,
    archive_ids_stay_above_the_recorded_highest_id,
    group_commit_writes_of_many_writers_survive_reopen,
    archive_counters_survive_reopen,
    entries_stored_before_counters_are_counted_after_upgrade,
);

#[test]
fn memory_storage_starts_at_the_current_schema_version() {
    let stored = Storage::memory()
        .backend()
        .get(Tree::Meta, b"schema_version")
        .expect("get");
    assert_eq!(stored, Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
}

#[test]
fn backend_kind_is_configured_by_lowercase_name_and_defaults_to_redb() {
    let kinds: Vec<BackendKind> =
        serde_json::from_str(r#"["redb", "sled", "memory"]"#).expect("parse");
    assert_eq!(
        kinds,
        [BackendKind::Redb, BackendKind::Sled, BackendKind::Memory]
    );
    assert!(serde_json::from_str::<BackendKind>(r#""Redb""#).is_err());
    assert_eq!(BackendKind::default(), BackendKind::Redb);
}
