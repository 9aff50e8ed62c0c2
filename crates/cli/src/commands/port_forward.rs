//! `coder port-forward WORKSPACE --tcp LOCAL:REMOTE --udp LOCAL:REMOTE`: local listeners whose
//! connections (and datagrams) reach ports on the workspace's loopback through the tunnel.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Mutex, mpsc, watch};
use tunnel::proto::{self, StreamRequest};

use crate::commands::GlobalArgs;
use crate::dial::{self, AgentTunnel, Redial};
use crate::output;
use crate::session;

/// The tunnel new connections use.
type Tunnels = watch::Receiver<Arc<AgentTunnel>>;

/// A UDP peer with no traffic for this long is forgotten (its stream closed).
const UDP_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub(crate) struct PortForwardArgs {
    /// The workspace: name, owner/name, or name.agent.
    workspace: String,
    /// Forward TCP: [BIND_IP:]LOCAL[:REMOTE], ports or ranges like 9000-9005 (repeatable).
    #[arg(
        short = 'p',
        long = "tcp",
        env = "CODER_PORT_FORWARD_TCP",
        value_delimiter = ','
    )]
    tcp: Vec<String>,
    /// Forward UDP: [BIND_IP:]LOCAL[:REMOTE] (repeatable).
    #[arg(long = "udp", env = "CODER_PORT_FORWARD_UDP", value_delimiter = ',')]
    udp: Vec<String>,
}

/// One local port to one remote port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Forward {
    local: SocketAddr,
    remote: u16,
}

fn parse_range(text: &str) -> Result<Vec<u16>> {
    let port = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("{p:?} is not a port (1-65535)"))
    };
    match text.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (port(first)?, port(last)?);
            if first > last {
                bail!("the range {text:?} runs backwards");
            }
            Ok((first..=last).collect())
        }
        None => Ok(vec![port(text)?]),
    }
}

/// Parses `[BIND_IP:]LOCAL[:REMOTE]` (IPv6 addresses in brackets).
fn parse_spec(spec: &str) -> Result<Vec<Forward>> {
    let (bind, rest) = if let Some(stripped) = spec.strip_prefix('[') {
        let (ip, rest) = stripped
            .split_once("]:")
            .with_context(|| format!("{spec:?}: expected [IPv6]:LOCAL[:REMOTE]"))?;
        (ip.parse::<IpAddr>()?, rest.to_owned())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.as_slice() {
            [ip, local, remote] => (
                ip.parse::<IpAddr>()
                    .with_context(|| format!("{spec:?}: {ip:?} is not an IP address"))?,
                format!("{local}:{remote}"),
            ),
            _ => (IpAddr::V4(Ipv4Addr::LOCALHOST), spec.to_owned()),
        }
    };
    let (local, remote) = match rest.split_once(':') {
        Some((local, remote)) => (parse_range(local)?, parse_range(remote)?),
        None => {
            let ports = parse_range(&rest)?;
            (ports.clone(), ports)
        }
    };
    if local.len() != remote.len() {
        bail!("{spec:?}: the local and remote ranges differ in length");
    }
    Ok(local
        .into_iter()
        .zip(remote)
        .map(|(local, remote)| Forward {
            local: SocketAddr::new(bind, local),
            remote,
        })
        .collect())
}

pub(crate) async fn run(global: &GlobalArgs, args: PortForwardArgs) -> Result<ExitCode> {
    let tcp: Vec<Forward> = args
        .tcp
        .iter()
        .map(|spec| parse_spec(spec))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let udp: Vec<Forward> = args
        .udp
        .iter()
        .map(|spec| parse_spec(spec))
        .collect::<Result<Vec<_>>>()?
        .concat();
    if tcp.is_empty() && udp.is_empty() {
        bail!("nothing to forward: give --tcp LOCAL:REMOTE or --udp LOCAL:REMOTE");
    }
    let client = session::client(global)?;
    let tunnel = Arc::new(dial::dial(&client, &args.workspace, global.dial_options()).await?);
    let workspace = tunnel.workspace.name.clone();
    // New connections use the current tunnel; a broken one is replaced (see below).
    let (current, tunnels) = watch::channel(tunnel);
    let mut tasks = tokio::task::JoinSet::new();
    for forward in tcp {
        let listener = TcpListener::bind(forward.local)
            .await
            .with_context(|| format!("listening on {} (tcp)", forward.local))?;
        output::line(format!(
            "Forwarding {} (tcp) to port {} in workspace {}",
            forward.local, forward.remote, workspace
        ))?;
        tasks.spawn(forward_tcp(listener, forward.remote, tunnels.clone()));
    }
    for forward in udp {
        let socket = UdpSocket::bind(forward.local)
            .await
            .with_context(|| format!("listening on {} (udp)", forward.local))?;
        output::line(format!(
            "Forwarding {} (udp) to port {} in workspace {}",
            forward.local, forward.remote, workspace
        ))?;
        tasks.spawn(forward_udp(socket, forward.remote, tunnels.clone()));
    }
    output::line("Ready; press Ctrl+C to stop.")?;
    let redial = Redial {
        client,
        target: args.workspace.clone(),
        options: global.dial_options(),
    };
    // A tunnel that breaks (its relay died, the network changed) is dialled again; connections
    // open on it end, and new ones use the new tunnel.
    let keep = async {
        loop {
            let tunnel = current.borrow().clone();
            tunnel.stranded().await;
            output::note(format!(
                "The tunnel to {workspace} broke; dialling again..."
            ));
            let fresh = redial.until_up(None).await?;
            output::note(format!("Reconnected to {workspace}."));
            current.send_replace(Arc::new(fresh));
            tokio::spawn(async move { tunnel.close().await });
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        result = keep => return result,
    }
    tasks.abort_all();
    current.borrow().clone().close().await;
    Ok(ExitCode::SUCCESS)
}

async fn forward_tcp(listener: TcpListener, remote: u16, tunnels: Tunnels) {
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tunnel = tunnels.borrow().clone();
        tokio::spawn(async move {
            match tunnel.open(&StreamRequest::Tcp { port: remote }).await {
                Ok((mut send, mut recv)) => {
                    let _ = tunnel::pipe::splice_tcp(&mut send, &mut recv, &mut tcp).await;
                }
                Err(err) => output::note(format!("{peer} -> port {remote}: {err:#}")),
            }
        });
    }
}

/// Each local peer gets its own stream, so replies go back to whoever sent.
async fn forward_udp(socket: UdpSocket, remote: u16, tunnels: Tunnels) {
    let socket = Arc::new(socket);
    let peers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
    let mut buffer = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let datagram = buffer[..n].to_vec();
        let mut map = peers.lock().await;
        if let Some(sender) = map.get(&peer)
            && sender.send(datagram.clone()).await.is_ok()
        {
            continue;
        }
        let (sender, receiver) = mpsc::channel(256);
        let _ = sender.send(datagram).await;
        map.insert(peer, sender);
        drop(map);
        tokio::spawn(udp_peer(
            socket.clone(),
            peer,
            receiver,
            remote,
            tunnels.borrow().clone(),
            peers.clone(),
        ));
    }
}

async fn udp_peer(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    remote: u16,
    tunnel: Arc<AgentTunnel>,
    peers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
) {
    let result = async {
        let (mut send, mut recv) = tunnel.open(&StreamRequest::Udp { port: remote }).await?;
        let upstream = async {
            while let Ok(Some(datagram)) = tokio::time::timeout(UDP_IDLE, datagrams.recv()).await {
                proto::write_datagram(&mut send, &datagram).await?;
            }
            anyhow::Ok(())
        };
        let downstream = async {
            loop {
                let datagram = proto::read_datagram(&mut recv).await?;
                socket.send_to(&datagram, peer).await?;
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        };
        tokio::select! {
            result = upstream => result,
            result = downstream => result,
        }
    }
    .await;
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "a UDP forward ended");
    }
    peers.lock().await.remove(&peer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(local: &str, remote: u16) -> Forward {
        Forward {
            local: local.parse().unwrap(),
            remote,
        }
    }

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("8080").unwrap(),
            vec![forward("127.0.0.1:8080", 8080)]
        );
        assert_eq!(
            parse_spec("8080:80").unwrap(),
            vec![forward("127.0.0.1:8080", 80)]
        );
        assert_eq!(
            parse_spec("0.0.0.0:8080:80").unwrap(),
            vec![forward("0.0.0.0:8080", 80)]
        );
        assert_eq!(
            parse_spec("[::1]:8080:80").unwrap(),
            vec![forward("[::1]:8080", 80)]
        );
        assert_eq!(
            parse_spec("9000-9001:8000-8001").unwrap(),
            vec![
                forward("127.0.0.1:9000", 8000),
                forward("127.0.0.1:9001", 8001)
            ]
        );
        assert!(parse_spec("9000-9002:8000-8001").is_err());
        assert!(parse_spec("0").is_err());
        assert!(parse_spec("x:80").is_err());
        assert!(parse_spec("99999").is_err());
    }
}
