//! The `--manifest-url` source against a small HTTP server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use podvisor::actors::url_source::{FetchNow, UrlSource};
use podvisor::testing::Sink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);

/// What the test server answers, and the requests it saw.
#[derive(Default)]
struct Served {
    status: u16,
    body: String,
    etag: String,
    requests: Vec<String>,
}

async fn serve(state: Arc<Mutex<Served>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = {
                    let mut s = state.lock().unwrap();
                    s.requests.push(req.clone());
                    let matches = !s.etag.is_empty()
                        && req
                            .lines()
                            .any(|l| l.eq_ignore_ascii_case(&format!("if-none-match: {}", s.etag)));
                    if matches {
                        "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n".to_string()
                    } else {
                        format!(
                            "HTTP/1.1 {} X\r\nETag: {}\r\nContent-Length: {}\r\n\r\n{}",
                            s.status,
                            s.etag,
                            s.body.len(),
                            s.body
                        )
                    }
                };
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

fn pod_yaml(image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix::test]
async fn the_url_source_honours_etags_and_keeps_the_last_good_set() {
    let state = Arc::new(Mutex::new(Served {
        status: 200,
        body: pod_yaml("busybox:1"),
        etag: "\"v1\"".into(),
        ..Default::default()
    }));
    let port = serve(state.clone()).await;
    let sets = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(sets.clone()).start();
    let metrics = Arc::new(podvisor::metrics::Metrics::new());
    let source = UrlSource::new(
        format!("http://127.0.0.1:{port}/pods.yaml"),
        vec![("X-Token".into(), "secret".into())],
        Duration::from_secs(3600),
        "node-1".into(),
        sink.recipient(),
    )
    .with_metrics(metrics.clone())
    .start();

    until("the first set", || sets.lock().unwrap().len() == 1).await;
    {
        let got = sets.lock().unwrap();
        assert_eq!(got[0].source, "http");
        assert_eq!(got[0].pods.len(), 1);
        let p = &got[0].pods[0];
        assert_eq!(
            p.uid,
            podvisor::model::naming::derived_pod_uid("http", "node-1", "default", "web"),
            "URL pods are told apart from file pods in the UID"
        );
        assert!(p.problem.is_none());
        let first = &state.lock().unwrap().requests[0];
        assert!(
            first.contains("X-Token: secret") || first.contains("x-token: secret"),
            "{first}"
        );
    }

    // Unchanged: the server answers 304 to the ETag; no new set.
    source.do_send(FetchNow);
    until("a second request", || {
        state.lock().unwrap().requests.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(state.lock().unwrap().requests[1]
        .to_lowercase()
        .contains("if-none-match: \"v1\""));
    assert_eq!(sets.lock().unwrap().len(), 1);

    // A broken body: the last good pods stay, with the problem.
    {
        let mut s = state.lock().unwrap();
        s.body = "apiVersion: v1\nkind: Pod\nmetadata: [\n".into();
        s.etag = "\"v2\"".into();
    }
    source.do_send(FetchNow);
    until("a set with the problem", || sets.lock().unwrap().len() == 2).await;
    {
        let got = sets.lock().unwrap();
        assert_eq!(got[1].pods.len(), 1, "the last good set stays");
        let problem = got[1].pods[0]
            .problem
            .clone()
            .expect("the problem is shown");
        assert!(problem.contains("pods.yaml"), "{problem}");
    }
    let syntax = || {
        metrics
            .manifest_errors
            .get_or_create(&[("kind", "syntax")])
            .get()
    };
    assert_eq!(syntax(), 1, "the broken body is counted by kind");

    // Unreachable: nothing new is sent (the last set stands).
    state.lock().unwrap().status = 503;
    state.lock().unwrap().etag = "\"v3\"".into();
    source.do_send(FetchNow);
    until("the failing request", || {
        state.lock().unwrap().requests.len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sets.lock().unwrap().len(), 2);

    // A good new body: the new spec.
    {
        let mut s = state.lock().unwrap();
        s.status = 200;
        s.body = pod_yaml("busybox:2");
        s.etag = "\"v4\"".into();
    }
    source.do_send(FetchNow);
    until("the new set", || sets.lock().unwrap().len() == 3).await;
    let got = sets.lock().unwrap();
    let image = got[2].pods[0].pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("busybox:2"));
    assert!(got[2].pods[0].problem.is_none());
}
