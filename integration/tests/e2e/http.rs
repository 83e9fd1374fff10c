//! The daemon's HTTP listener as a Prometheus server and a Kea script see
//! it: `/metrics` scraped while load runs, whose counters move as the load
//! says; Kea's commands answered in Kea's shapes; a token on a listener
//! off loopback.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use irondhcp_testkit::testbed::{Testbed, TestbedOptions, SERVER_IP};
use serde_json::{json, Value};

use crate::started;

/// One HTTP/1.1 exchange with the daemon at `addr` inside the server
/// namespace: (status, body).
fn http(
    tb: &Testbed,
    addr: Ipv4Addr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let (method, path) = (method.to_string(), path.to_string());
    let token = token.map(str::to_string);
    tb.server
        .run_inside(move || {
            let mut s = TcpStream::connect(SocketAddrV4::new(addr, 8000)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let auth = token
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: irondhcp\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).expect("read the answer");
            let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .expect("a status code");
            (status, body.to_string())
        })
        .expect("run inside the server namespace")
}

fn loopback() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

/// The value of the sample `line_start` (`name{labels}`) in an exposition.
fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {line_start} in\n{text}"))
}

fn scrape(tb: &Testbed) -> String {
    let (status, body) = http(tb, loopback(), "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{body}");
    body
}

const DISCOVERS: &str = "kea_dhcp4_packets_received_total{operation=\"discover\"}";
const ACKS: &str = "kea_dhcp4_packets_sent_total{operation=\"ack\"}";
const ASSIGNED: &str =
    "kea_dhcp4_addresses_assigned_total{subnet=\"198.18.0.0/16\",subnet_id=\"1\",pool=\"\"}";

#[test]
fn metrics_move_as_the_load_says() {
    let tb = started(&TestbedOptions::default());
    let before = scrape(&tb);
    assert_eq!(sample(&before, DISCOVERS), 0.0);
    assert_eq!(sample(&before, ASSIGNED), 0.0);
    assert_eq!(
        sample(
            &before,
            "kea_dhcp4_addresses_total{subnet=\"198.18.0.0/16\",subnet_id=\"1\",pool=\"198.18.1.0-198.18.255.254\"}"
        ),
        65_279.0
    );
    // 600 new clients at 200/s: 3 s of load, scraped while it runs.
    let load = tb
        .client
        .command(irondhcp_testkit::bins::loadgen())
        .args(["--iface", &tb.cli_if, "--json", "--scenario", "dora"])
        .args(["--rate", "200", "--count", "600", "--tries", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run irondhcp-loadgen");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut during = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let text = scrape(&tb);
        let acks = sample(&text, ACKS);
        if acks > 0.0 && acks < 600.0 {
            during = Some(acks);
            break;
        }
    }
    let report = load.wait_with_output().expect("the load generator");
    assert!(report.status.success());
    let r: Value = serde_json::from_slice(&report.stdout).expect("its report");
    let answered = r
        .pointer("/exchanges/REQUEST-ACK/answered")
        .and_then(Value::as_u64)
        .expect("ACKs");
    assert!(
        during.is_some(),
        "no scrape saw the ACK counter part-way through the load"
    );
    let after = scrape(&tb);
    // Every exchange the generator saw answered is counted once.
    assert_eq!(sample(&after, ACKS), answered as f64);
    assert!(sample(&after, DISCOVERS) >= answered as f64);
    assert_eq!(sample(&after, ASSIGNED), answered as f64);
    assert_eq!(sample(&after, "irondhcp_lease_map_leases"), answered as f64);
    assert!(
        answered >= 594,
        "the load lost more than 1 %: {answered} of 600"
    );
    // Every grant went through a measured transaction: the batch sizes add
    // up to at least the grants, in at most as many transactions.
    let batches = sample(&after, "irondhcp_commit_batch_size_count");
    let written = sample(&after, "irondhcp_commit_batch_size_sum");
    assert!(
        written >= answered as f64,
        "{written} writes for {answered} grants"
    );
    assert!(
        batches >= 1.0 && batches <= written,
        "{batches} transactions"
    );
    assert_eq!(
        sample(&after, "irondhcp_commit_duration_seconds_count"),
        batches
    );
    assert!(sample(&after, "irondhcp_commit_duration_seconds_sum") > 0.0);
    // The queue's AF_XDP socket is read; at 200/s it dropped nothing.
    assert_eq!(
        sample(
            &after,
            "irondhcp_afxdp_drops_total{queue=\"0\",reason=\"rx_ring_full\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(&after, "irondhcp_control_queue_depth{queue=\"requests\"}"),
        0.0
    );
    assert_eq!(sample(&after, "irondhcp_promise_shortened_total"), 0.0);
}

#[test]
fn kea_commands_are_answered_in_kea_s_shapes() {
    let tb = started(&TestbedOptions::default());
    // One lease, through the load generator.
    let out = tb
        .client
        .command(irondhcp_testkit::bins::loadgen())
        .args(["--iface", &tb.cli_if, "--json", "--scenario", "dora"])
        .args(["--rate", "100", "--count", "3"])
        .output()
        .expect("run irondhcp-loadgen");
    assert!(out.status.success());
    let post = |body: Value| {
        let (status, text) = http(&tb, loopback(), "POST", "/", None, Some(body));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).expect("JSON")
    };
    let page =
        post(json!({"command": "lease4-get-page", "arguments": {"from": "start", "limit": 2}}));
    assert_eq!(page["result"], 0, "{page}");
    assert_eq!(page["arguments"]["count"], 2);
    let first = &page["arguments"]["leases"][0];
    let ip = first["ip-address"]
        .as_str()
        .expect("ip-address")
        .to_string();
    assert_eq!(first["subnet-id"], 1);
    let next = page["arguments"]["leases"][1]["ip-address"]
        .as_str()
        .unwrap()
        .to_string();
    let rest =
        post(json!({"command": "lease4-get-page", "arguments": {"from": next, "limit": 10}}));
    assert_eq!(rest["arguments"]["count"], 1, "{rest}");
    let one = post(json!({"command": "lease4-get", "arguments": {"ip-address": ip}}));
    assert_eq!(one["result"], 0, "{one}");
    let hw = one["arguments"]["hw-address"].as_str().unwrap().to_string();
    let by_hw =
        post(json!({"command": "lease4-get-by-hw-address", "arguments": {"hw-address": hw}}));
    assert_eq!(by_hw["arguments"]["leases"][0]["ip-address"], ip.as_str());
    let none = post(json!({"command": "lease4-get", "arguments": {"ip-address": "198.18.250.1"}}));
    assert_eq!(none["result"], 3);
    // The control agent's shape: with "service", a list.
    let all = post(json!({"command": "statistic-get-all", "service": ["dhcp4"]}));
    let stats = &all[0]["arguments"];
    assert_eq!(all[0]["result"], 0, "{all}");
    assert_eq!(stats["pkt4-ack-sent"][0][0], 3);
    assert_eq!(stats["subnet[1].assigned-addresses"][0][0], 3);
    assert_eq!(stats["subnet[1].pool[0].total-addresses"][0][0], 65_279);
    let st = post(json!({"command": "stat-lease4-get"}));
    assert_eq!(
        st["arguments"]["result-set"]["rows"][0],
        json!([1, 65279, 3, 3, 0])
    );
    let status = post(json!({"command": "status-get"}));
    assert!(status["arguments"]["pid"].as_u64().is_some(), "{status}");
    assert_eq!(post(json!({"command": "config-write"}))["result"], 2);
    let (status, _) = http(&tb, loopback(), "POST", "/", None, None);
    assert_eq!(status, 400, "an empty body is a bad request");
    let (status, health) = http(&tb, loopback(), "GET", "/health", None, None);
    assert_eq!(status, 200, "{health}");
}

#[test]
fn a_listener_off_loopback_wants_the_token() {
    let tb = started(&TestbedOptions {
        tail: "[http]\nlisten = \"0.0.0.0:8000\"\ntoken = \"s3cret\"\n".into(),
        ..TestbedOptions::default()
    });
    let (status, _) = http(&tb, SERVER_IP, "GET", "/metrics", None, None);
    assert_eq!(status, 401);
    let (status, _) = http(&tb, SERVER_IP, "GET", "/metrics", Some("guess"), None);
    assert_eq!(status, 401);
    let (status, text) = http(&tb, SERVER_IP, "GET", "/metrics", Some("s3cret"), None);
    assert_eq!(status, 200);
    assert!(text.contains("kea_dhcp4_packets_received_total"));
    let (status, _) = http(
        &tb,
        SERVER_IP,
        "POST",
        "/",
        None,
        Some(json!({"command": "stats"})),
    );
    assert_eq!(status, 401);
    // irondhcp-ctl over HTTP, as from another machine: with the token it
    // works (the socket is not used: it names a file that is not there);
    // with a wrong one it says so in one line.
    let ctl = |token: &str, args: &[&str]| {
        let out = tb
            .server
            .command(irondhcp_testkit::bins::ctl())
            .args([
                "--socket",
                "/nonexistent",
                "--url",
                &format!("http://{SERVER_IP}:8000"),
            ])
            .env("IRONDHCP_TOKEN", token)
            .args(args)
            .output()
            .expect("run irondhcp-ctl");
        crate::outcome(out)
    };
    let (code, out, err) = ctl("s3cret", &["pools"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("198.18.1.0-198.18.255.254"), "{out}");
    let (code, out, err) = ctl(
        "s3cret",
        &[
            "reservations",
            "add",
            "--subnet",
            "1",
            "--mac",
            "02:00:00:00:00:77",
            "--address",
            "198.18.9.9",
        ],
    );
    assert_eq!((code, out.trim()), (0, "Host added."), "{err}");
    let (code, _, err) = ctl("guess", &["pools"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("token was refused") && err.lines().count() == 1,
        "{err}"
    );
}

/// Every operation `docs/openapi.json` describes (served by the daemon at
/// `/api/v1/openapi.json`) is called on the running server: the status it
/// answers is one the description lists for it, and the body has every
/// property the description requires. Every described operation is
/// called, so a route the server lacks, or a shape that drifted, fails.
#[test]
fn the_openapi_description_matches_the_running_server() {
    use irondhcp_testkit::rawclient::RawClient;
    let tb = started(&TestbedOptions::default());
    let c = RawClient::open(&tb).expect("raw socket");
    let leased = crate::lease_safety::bind_ack(&c, [0x02, 0, 0, 0, 0xe0, 0x01], 0xa000)
        .yiaddr()
        .to_string();
    let (status, body) = http(&tb, loopback(), "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("the description is JSON");
    let host = |mac: &str, ip: &str| json!({"subnet-id": 1, "hw-address": mac, "ip-address": ip, "hostname": "cam"});
    let lease_path = format!("/api/v1/leases/{leased}");
    // (method, described path, concrete path, body, expected status)
    let calls: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        (
            "get",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json".into(),
            None,
            200,
        ),
        (
            "get",
            "/api/v1/leases",
            "/api/v1/leases?subnet=1&limit=5".into(),
            None,
            200,
        ),
        (
            "get",
            "/api/v1/leases",
            "/api/v1/leases?state=bogus".into(),
            None,
            400,
        ),
        (
            "get",
            "/api/v1/leases/{address}",
            lease_path.clone(),
            None,
            200,
        ),
        (
            "get",
            "/api/v1/leases/{address}",
            "/api/v1/leases/198.18.9.9".into(),
            None,
            404,
        ),
        ("get", "/api/v1/pools", "/api/v1/pools".into(), None, 200),
        (
            "get",
            "/api/v1/servers",
            "/api/v1/servers".into(),
            None,
            200,
        ),
        (
            "post",
            "/api/v1/reservations",
            "/api/v1/reservations".into(),
            Some(host("02:00:00:00:00:e1", "198.18.100.1")),
            201,
        ),
        (
            "post",
            "/api/v1/reservations",
            "/api/v1/reservations".into(),
            Some(host("02:00:00:00:00:e2", "198.18.100.1")),
            409,
        ),
        (
            "post",
            "/api/v1/reservations",
            "/api/v1/reservations".into(),
            Some(json!({"subnet-id": 1})),
            400,
        ),
        (
            "get",
            "/api/v1/reservations",
            "/api/v1/reservations".into(),
            None,
            200,
        ),
        (
            "get",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.1".into(),
            None,
            200,
        ),
        (
            "put",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.1".into(),
            Some(json!({"ip-address": "198.18.100.2"})),
            200,
        ),
        (
            "put",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.2".into(),
            Some(host("02:00:00:00:00:e3", "198.18.100.3")),
            400,
        ),
        (
            "put",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.1".into(),
            Some(json!({"ip-address": "198.18.100.4"})),
            404,
        ),
        (
            "get",
            "/api/v1/reservations/audit",
            "/api/v1/reservations/audit?limit=10".into(),
            None,
            200,
        ),
        (
            "delete",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.2".into(),
            None,
            200,
        ),
        (
            "delete",
            "/api/v1/reservations/{subnet}/{address}",
            "/api/v1/reservations/1/198.18.100.2".into(),
            None,
            404,
        ),
        (
            "post",
            "/api/v1/config/test",
            "/api/v1/config/test".into(),
            None,
            200,
        ),
        (
            "post",
            "/api/v1/config/reload",
            "/api/v1/config/reload".into(),
            None,
            200,
        ),
        ("post", "/api/v1/drain", "/api/v1/drain".into(), None, 200),
        (
            "post",
            "/api/v1/undrain",
            "/api/v1/undrain".into(),
            None,
            200,
        ),
        (
            "delete",
            "/api/v1/leases/{address}",
            lease_path.clone(),
            None,
            200,
        ),
        ("delete", "/api/v1/leases/{address}", lease_path, None, 404),
    ];
    let mut called = std::collections::BTreeSet::new();
    for (method, described, path, body, want) in &calls {
        let (status, text) = http(
            &tb,
            loopback(),
            &method.to_uppercase(),
            path,
            None,
            body.clone(),
        );
        assert_eq!(status, *want, "{method} {path}: {text}");
        let op = &doc["paths"][*described][*method];
        assert!(op.is_object(), "{method} {described} is not described");
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {described}: status {status} is not described"
        );
        let schema = resolve(&doc, &resp["content"]["application/json"]["schema"]);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        for k in schema["required"].as_array().into_iter().flatten() {
            let k = k.as_str().expect("a property name");
            assert!(
                v.get(k).is_some(),
                "{method} {path}: {status} lacks {k:?}: {text}"
            );
        }
        // Items of a described array are checked too (one level).
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            let items = resolve(&doc, &prop["items"]);
            for item in v[name].as_array().into_iter().flatten() {
                for k in items["required"].as_array().into_iter().flatten() {
                    let k = k.as_str().expect("a property name");
                    assert!(
                        item.get(k).is_some(),
                        "{method} {path}: an item of {name} lacks {k:?}: {item}"
                    );
                }
            }
        }
        called.insert((method.to_string(), described.to_string()));
    }
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            assert!(
                called.contains(&(method.clone(), path.clone())),
                "{method} {path} is described but this test never calls it"
            );
        }
    }
}

/// `schema`, or what its `$ref` names.
fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    }
}
