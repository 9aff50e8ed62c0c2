//! Prints how many bytes per second one core seals the way a QUIC sender does with the
//! tunnel's cipher suite (TLS_AES_128_GCM_SHA256 through ring, as rustls's ring provider does):
//! AES-128-GCM over each packet's payload, then the header-protection mask from a sample of it.
//!
//! `bench/run` turns this into the direct tunnel's ceiling. It used `openssl speed`, but
//! OpenSSL 3.0's AES-GCM is not the tunnel's: here it did a third of ring's rate at packet
//! sizes and under half of it at 8 KiB, while ring runs its VAES code path.
//!
//! It takes no arguments (only the `coder` binary reads argv): one second, packets of the
//! tunnel's size.

use std::io::Write;
use std::time::{Duration, Instant};

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The largest QUIC packet the tunnel sends: noq's MTU discovery stops at 1452 bytes of UDP
/// payload.
const PACKET_BYTES: usize = 1452;

/// A QUIC short header's length with an 8-byte connection id and a 4-byte packet number:
/// the associated data each packet authenticates.
const HEADER_BYTES: usize = 13;

struct Sealer {
    key: LessSafeKey,
    header_key: HeaderProtectionKey,
    iv: [u8; 12],
}

impl Sealer {
    fn new() -> Self {
        let key = UnboundKey::new(&AES_128_GCM, &[0x42; 16]).expect("a 16-byte key");
        let header_key = HeaderProtectionKey::new(&AES_128, &[0x24; 16]).expect("a 16-byte key");
        Self {
            key: LessSafeKey::new(key),
            header_key,
            iv: [0x17; 12],
        }
    }

    /// Seals `payload` in place as packet `number`, appending the tag, and returns the header
    /// protection mask, as a sender does for each packet.
    fn seal(&self, number: u64, header: &[u8], payload: &mut Vec<u8>) -> [u8; 5] {
        let mut nonce = self.iv;
        for (byte, pn) in nonce[4..].iter_mut().zip(number.to_be_bytes()) {
            *byte ^= pn;
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                payload,
            )
            .expect("a payload within AES-GCM's limits");
        payload.extend_from_slice(tag.as_ref());
        self.header_key
            .new_mask(&payload[..16])
            .expect("a 16-byte sample")
    }
}

/// Bytes of payload sealed per second over `duration`.
fn rate(packet: usize, duration: Duration) -> f64 {
    let sealer = Sealer::new();
    let header = [0u8; HEADER_BYTES];
    let payload_bytes = packet.saturating_sub(HEADER_BYTES + 16).max(16);
    let mut payload = vec![0x5a; payload_bytes];
    let start = Instant::now();
    let mut packets = 0u64;
    while start.elapsed() < duration {
        // Check the clock every 256 packets only: reading it costs as much as a small packet.
        for _ in 0..256 {
            payload.truncate(payload_bytes);
            let mask = sealer.seal(packets, &header, &mut payload);
            std::hint::black_box(mask);
            packets += 1;
        }
    }
    (packets as f64 * payload_bytes as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    let bytes_per_second = rate(PACKET_BYTES, Duration::from_secs(1));
    // Written, not printed: the workspace's lints keep `println!` to the CLI's output module.
    let _ = writeln!(std::io::stdout().lock(), "{bytes_per_second:.0}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop measures real encryption: what it seals opens again under the same key and
    /// nonce, and the ciphertext is not the plaintext.
    #[test]
    fn sealed_packets_open_to_the_original_payload() {
        let sealer = Sealer::new();
        let header = [7u8; HEADER_BYTES];
        let plain = vec![0x5a; 1400];
        let mut sealed = plain.clone();
        sealer.seal(3, &header, &mut sealed);
        assert_eq!(sealed.len(), plain.len() + 16);
        assert_ne!(sealed[..plain.len()], plain[..]);

        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x42; 16]).unwrap());
        let mut nonce = [0x17; 12];
        nonce[11] ^= 3;
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..]),
                &mut sealed,
            )
            .unwrap();
        assert_eq!(opened, &plain[..]);
    }
}
