//! Helpers shared by the gateway benchmarks (`bench gateway`, `bench fix`).

use std::net::SocketAddr;

/// p50 / p99 / p99.9 / max of nanosecond samples, as JSON.
pub fn percentiles(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    serde_json::json!({
        "samples": v.len(),
        "p50_ns": at(0.50),
        "p99_ns": at(0.99),
        "p99_9_ns": at(0.999),
        "max_ns": v[v.len() - 1],
    })
}

/// A raw TCP echo server (TCP_NODELAY) on the current tokio runtime: the round-trip baseline.
pub async fn echo_server() -> anyhow::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut r, mut w) = s.into_split();
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}
