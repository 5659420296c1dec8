//! Request ids: every answer carries `x-request-id` (the caller's if it is a short plain token,
//! else a fresh one), and with `log.format = "json"` every log line of the request names it.

use std::time::Duration;

use seckill_e2e::{origin_command, wait_until, TestApp};
use seckill_origin::configuration::LogFormat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_request_id_and_json_logs_name_it() {
    let app = TestApp::spawn().await; // the database and topics of this test
    let mut settings = app.settings.clone();
    settings.log.format = LogFormat::Json;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("seckill-request-ids-{}.log", app.id));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = origin_command(&settings, &["serve"])
        .env("APP_HTTP__PORT", port.to_string())
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let up = wait_until(Duration::from_secs(60), || async {
        app.http.get(format!("{url}/livez")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "the origin did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());

    let id_of = |resp: &reqwest::Response| resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let kept = app.http.get(format!("{url}/health")).header("x-request-id", "edge-4f2a.1_x").send().await.unwrap();
    assert_eq!(id_of(&kept), "edge-4f2a.1_x", "a valid id is kept");
    for bad in ["has space", "<script>", &"a".repeat(65)] {
        let resp = app.http.get(format!("{url}/livez")).header("x-request-id", bad).send().await.unwrap();
        let id = id_of(&resp);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} replaced by a fresh id, got {id:?}");
    }
    let made = app.http.get(format!("{url}/api/products")).send().await.unwrap(); // 403: no secret
    assert_eq!(made.status(), 403);
    let made_id = id_of(&made);
    assert!(uuid::Uuid::parse_str(&made_id).is_ok(), "an error answer gets one too: {made_id}");

    let named = |id: String| {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log).unwrap_or_default().lines().any(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .is_ok_and(|v| v["span"]["request_id"].as_str() == Some(id.as_str()))
            })
        }
    };
    assert!(wait_until(Duration::from_secs(5), || named("edge-4f2a.1_x".into())).await, "no JSON log line names it");
    assert!(wait_until(Duration::from_secs(5), || named(made_id.clone())).await, "no JSON log line names {made_id}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    app.check().await;
}
