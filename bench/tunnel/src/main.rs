//! Prints how many bytes per second the tunnel itself moves: two endpoints set up as the
//! product sets them up (`tunnel::bind`, direct over loopback UDP), in one process, one stream,
//! the sender writing from memory and the receiver counting, with no TCP socket at either end.
//!
//! `bench/run` prints it beside the direct tunnel's rows. `coder port-forward` with iperf3 adds
//! two TCP legs and two more processes to this work; `coder speedtest` does the same work in
//! two processes and lands about here.
//!
//! It takes no arguments (only the `coder` binary reads argv): three seconds, 64 KiB writes.

use std::error::Error;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tunnel::{Endpoint, EndpointAddr, EndpointOptions, SecretKey};

const ALPN: &[u8] = b"coder/bench/tunnel-ceiling";
const SENDING: Duration = Duration::from_secs(3);
const WRITE_BYTES: usize = 64 * 1024;

type BoxError = Box<dyn Error + Send + Sync>;

fn main() -> ExitCode {
    match bytes_per_second() {
        Ok(rate) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{rate:.0}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err),
            }
        }
        Err(err) => fail(err.as_ref()),
    }
}

fn fail(err: &dyn Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "tunnel-ceiling: {err}");
    ExitCode::FAILURE
}

/// Sends for [`SENDING`] and returns the bytes the receiver counted per second, from the first
/// write to its count arriving back.
fn bytes_per_second() -> Result<f64, BoxError> {
    let (rate, _, _) = transfer(SENDING)?;
    Ok(rate)
}

/// Each end on a thread and single-threaded runtime of its own, as the agent and the CLI run
/// theirs (both ends on one multi-threaded runtime did 477–510 MB/s here, against 498–565).
fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn endpoint(alpns: Vec<Vec<u8>>) -> Result<Endpoint, BoxError> {
    Ok(tunnel::bind(EndpointOptions {
        secret_key: SecretKey::generate(),
        relays: Vec::new(),
        alpns,
        direct: true,
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        lookup: None,
    })
    .await?)
}

/// The rate, the bytes sent and the bytes the receiver counted.
fn transfer(sending: Duration) -> Result<(f64, u64, u64), BoxError> {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let sink = std::thread::spawn(move || runtime()?.block_on(receive(address_tx)));
    let Ok(address) = address_rx.recv() else {
        // The receiving end failed before it had an address: its error says why.
        return Err(match sink.join() {
            Ok(Err(err)) => err,
            _ => "the receiving end stopped".into(),
        });
    };
    // A sender that failed can leave the receiver waiting for a connection that never comes:
    // its error is the answer, without joining.
    let sent = runtime()?.block_on(send(address, sending))?;
    sink.join().map_err(|_| "the receiving end panicked")??;
    Ok(sent)
}

/// The receiving end: hands out its address, counts one stream's bytes and answers with the
/// count.
async fn receive(address_tx: std::sync::mpsc::Sender<EndpointAddr>) -> Result<(), BoxError> {
    let server = endpoint(vec![ALPN.to_vec()]).await?;
    let socket = *server
        .bound_sockets()
        .first()
        .ok_or("the receiving endpoint bound no socket")?;
    address_tx.send(EndpointAddr::new(server.id()).with_ip_addr(socket))?;
    let connection = server
        .accept()
        .await
        .ok_or("the receiving endpoint closed")?
        .await?;
    let (mut send, mut recv) = connection.accept_bi().await?;
    let mut buffer = vec![0u8; WRITE_BYTES];
    let mut total: u64 = 0;
    while let Some(read) = recv.read(&mut buffer).await? {
        total += read as u64;
    }
    send.write_all(&total.to_be_bytes()).await?;
    send.finish()?;
    // Until the sender has the count: closing first could cut it off.
    connection.closed().await;
    server.close().await;
    Ok(())
}

/// The sending end: writes for `sending`, then waits for the receiver's count. Returns the
/// rate, the bytes sent and the bytes counted.
async fn send(address: EndpointAddr, sending: Duration) -> Result<(f64, u64, u64), BoxError> {
    let client = endpoint(Vec::new()).await?;
    let connection = client.connect(address, ALPN).await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let chunk = vec![0x5a_u8; WRITE_BYTES];
    let started = Instant::now();
    let mut sent: u64 = 0;
    while started.elapsed() < sending {
        send.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    send.finish()?;
    let mut count = [0u8; 8];
    recv.read_exact(&mut count).await?;
    let elapsed = started.elapsed().as_secs_f64();
    connection.close(0u32.into(), b"done");
    client.close().await;
    let received = u64::from_be_bytes(count);
    Ok((received as f64 / elapsed, sent, received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_counts_every_byte_sent() {
        let (rate, sent, received) = transfer(Duration::from_millis(200)).unwrap();
        assert!(sent > 0, "nothing was sent");
        assert_eq!(
            received, sent,
            "the receiver's count differs from what was sent"
        );
        assert!(rate > 0.0);
    }
}
