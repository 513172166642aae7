//! What masking the token in responses costs, next to what a request costs anyway.
//!
//! Every response body the sandbox hands a component is scanned for the token (and its
//! encodings, and the `Authorization` value) as it streams through (`sandbox::scrub`). This
//! prints the scan's throughput over Segment-shaped JSON in 64 KiB chunks, the time it adds to
//! one 200-user page, and a request's round trip to the fake Segment API on loopback (the
//! cheapest network there is; Segment's own answers take tens to hundreds of milliseconds).
//!
//! `cargo bench -p baton-segment --bench scrub`

use baton_segment::sandbox::scrub::Scrubber;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "sgp_BenchToken9f3Kq2LmZx81Qp7uVb3nRtYw2LmA0cD9eFh4x7Vn";

/// A `GET /users` answer of `users` users, as Segment shapes it.
fn users_page(users: usize) -> Vec<u8> {
    let items: Vec<String> = (0..users)
        .map(|i| {
            format!(
                r#"{{"id":"usr{i:08}AbCdEf","name":"Person Number {i}","email":"person.{i}@example.com","permissions":[{{"roleId":"role{:04}","roleName":"Source Admin","resources":[{{"id":"src{i:06}","type":"SOURCE","labels":[]}}],"labels":[{{"key":"environment","value":"prod"}}]}}]}}"#,
                i % 13
            )
        })
        .collect();
    format!(
        r#"{{"data":{{"users":[{}],"pagination":{{"current":"MA==","next":"MjAw","totalEntries":{users}}}}}}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// Scans `body` in 64 KiB chunks `rounds` times; the time per scan.
fn scan(scrubber: &Arc<Scrubber>, body: &[u8], rounds: u32) -> Duration {
    let chunks: Vec<Bytes> = body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    let started = Instant::now();
    for _ in 0..rounds {
        let mut stream = scrubber.stream();
        let mut n = 0;
        for chunk in &chunks {
            n += stream.push(chunk.clone()).len();
        }
        n += stream.finish().len();
        assert_eq!(n, body.len());
    }
    started.elapsed() / rounds
}

/// The median round trip of a `GET /users` page to the fake Segment on loopback.
async fn round_trip() -> (Duration, usize) {
    let fake = fakes::segment::FakeSegment::start(fakes::segment::FakeConfig::demo())
        .await
        .unwrap();
    let mut times = vec![];
    let mut size = 0;
    for _ in 0..200 {
        let started = Instant::now();
        let mut socket = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
        socket
            .write_all(
                b"GET /users?pagination%5Bcount%5D=200 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo-token\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        times.push(started.elapsed());
        size = answer.len();
    }
    times.sort();
    (times[times.len() / 2], size)
}

fn main() {
    let scrubber = Arc::new(Scrubber::new(TOKEN).unwrap());
    let page = users_page(200);
    let big = users_page(60_000);
    let per_page = scan(&scrubber, &page, 2000);
    let per_big = scan(&scrubber, &big, 5);
    let mbps = |d: Duration, n: usize| n as f64 / d.as_secs_f64() / (1 << 20) as f64;

    // A body full of near-misses: the token's first 11 bytes over and over.
    let near: Vec<u8> = TOKEN.as_bytes()[..11]
        .iter()
        .chain(b"-")
        .copied()
        .cycle()
        .take(8 << 20)
        .collect();
    let per_near = scan(&scrubber, &near, 5);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (rtt, rtt_bytes) = runtime.block_on(round_trip());

    println!(
        "token scan over response bodies (64 KiB chunks, a {}-byte token)",
        TOKEN.len()
    );
    println!(
        "  200-user page ({} KiB)          {:>8.1} µs   {:>7.0} MiB/s",
        page.len() >> 10,
        per_page.as_secs_f64() * 1e6,
        mbps(per_page, page.len())
    );
    println!(
        "  60,000 users ({} MiB)           {:>8.1} ms   {:>7.0} MiB/s",
        big.len() >> 20,
        per_big.as_secs_f64() * 1e3,
        mbps(per_big, big.len())
    );
    println!(
        "  8 MiB of near-misses            {:>8.1} ms   {:>7.0} MiB/s",
        per_near.as_secs_f64() * 1e3,
        mbps(per_near, near.len())
    );
    println!(
        "  one GET /users round trip to the fake on loopback ({} bytes): {:.1} µs (median of 200)",
        rtt_bytes,
        rtt.as_secs_f64() * 1e6
    );
    println!(
        "  the scan of a 200-user page is {:.1}% of that round trip, and of a 100 ms Segment answer {:.3}%",
        per_page.as_secs_f64() / rtt.as_secs_f64() * 100.0,
        per_page.as_secs_f64() / 0.1 * 100.0
    );
}
