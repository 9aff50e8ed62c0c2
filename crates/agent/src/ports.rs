//! The ports processes in the workspace listen on (for port URLs in the dashboard): TCP
//! sockets in LISTEN state from `/proc/net/tcp{,6}`, named after the process that owns them.
//! Ports below 9 are the tunnel's own service numbers in Coder's scheme and are left out.

use std::collections::{BTreeMap, HashMap};

use sdk::ListeningPort;

/// The listening ports, by port number.
pub(crate) fn listening() -> Vec<ListeningPort> {
    let mut inodes: HashMap<u64, u16> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is field 9.
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state != "0A" {
                continue;
            }
            let port = local
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
            if let (Some(port), Ok(inode)) = (port, inode.parse::<u64>())
                && port >= 9
            {
                inodes.insert(inode, port);
            }
        }
    }
    let mut ports: BTreeMap<u16, String> =
        inodes.values().map(|port| (*port, String::new())).collect();
    // Name each port after its process (only ours are visible unless the agent is root).
    if let Ok(processes) = std::fs::read_dir("/proc") {
        for process in processes.flatten() {
            let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let inode = target
                    .to_str()
                    .and_then(|target| target.strip_prefix("socket:["))
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|inode| inode.parse::<u64>().ok());
                if let Some(port) = inode.and_then(|inode| inodes.get(&inode)) {
                    let name = std::fs::read_to_string(process.path().join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    ports.insert(*port, name);
                }
            }
        }
    }
    ports
        .into_iter()
        .map(|(port, process_name)| ListeningPort {
            process_name,
            network: "tcp".to_owned(),
            port,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_listener_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listening();
        let ours = found
            .iter()
            .find(|p| p.port == port)
            .expect("our listener is listed");
        assert_eq!(ours.network, "tcp");
        assert!(!ours.process_name.is_empty());
    }
}
