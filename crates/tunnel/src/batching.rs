//! Lets a relay-only endpoint send its packets in batches.
//!
//! noq hands a transport up to N packets at once (one GSO transmit), and the relay carries such
//! a batch as a single frame. iroh takes N as the smallest batch any of the endpoint's
//! transports accepts, and an endpoint without UDP sockets has none: it falls back to one packet
//! per transmit, so the relay forwards one WebSocket frame (two writes) per 1.4 KB packet and
//! becomes the bottleneck. [`Batching`] is a transport with no addresses, which never sends or
//! receives anything and exists only to declare that batches are fine.

use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::{Context, Poll};

use iroh::endpoint::transports::{
    CustomEndpoint, CustomSender, CustomTransport, RecvInfo, Transmit,
};
use iroh_base::CustomAddr;

/// noq's own cap on packets per transmit: a larger value changes nothing.
const SEGMENTS: NonZeroUsize = NonZeroUsize::new(10).expect("non-zero");

/// The transport to add to an endpoint that has no UDP sockets (see the module docs).
#[derive(Debug)]
pub(crate) struct Batching;

impl CustomTransport for Batching {
    fn bind(&self) -> io::Result<Box<dyn CustomEndpoint>> {
        Ok(Box::new(BatchingEndpoint {
            addrs: n0_watcher::Watchable::new(Vec::new()),
        }))
    }
}

#[derive(Debug)]
struct BatchingEndpoint {
    /// Always empty: nobody can address this transport.
    addrs: n0_watcher::Watchable<Vec<CustomAddr>>,
}

impl CustomEndpoint for BatchingEndpoint {
    fn watch_local_addrs(&self) -> n0_watcher::Direct<Vec<CustomAddr>> {
        self.addrs.watch()
    }

    fn create_sender(&self) -> Arc<dyn CustomSender> {
        Arc::new(NoSender)
    }

    fn poll_recv(
        &mut self,
        _cx: &mut Context,
        _bufs: &mut [io::IoSliceMut<'_>],
        _metas: &mut [noq_udp::RecvMeta],
        _recv_infos: &mut [RecvInfo],
    ) -> Poll<io::Result<usize>> {
        // Nothing ever arrives, so there is no waker to keep.
        Poll::Pending
    }

    fn max_transmit_segments(&self) -> NonZeroUsize {
        SEGMENTS
    }
}

#[derive(Debug)]
struct NoSender;

impl CustomSender for NoSender {
    fn is_valid_send_addr(&self, _addr: &CustomAddr) -> bool {
        false
    }

    fn poll_send(
        &self,
        _cx: &mut Context,
        dst: &CustomAddr,
        _src: Option<&CustomAddr>,
        _transmit: &Transmit<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{dst:?} is not reachable: this transport only enables batching"),
        )))
    }
}
