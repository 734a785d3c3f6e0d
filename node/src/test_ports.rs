//! Loopback ports for tests that start servers on fixed addresses (in-process clusters, node
//! processes): ports that no outgoing connection can take between "picked" and "bound".
//!
//! The usual trick — bind `127.0.0.1:0`, read the port, drop the listener — hands out a port from
//! the kernel's *ephemeral* range, and every outgoing connection on the machine (a Raft peer
//! dialling another node, a client, the control plane) draws its local port from that same range.
//! Between the pick and the node's own bind, such a connection can take the port and keep it for
//! as long as it lives; CI saw exactly that ("node 2 port stays busy: Address already in use").
//! Ports below the ephemeral range are only ever taken by an explicit `bind`, so picking one that
//! binds now, and never handing it out twice in this process, leaves no such window.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many ports below the ephemeral range are candidates.
const WINDOW: u32 = 10_000;

/// The lowest port ever handed out: below it sit well-known and registered service ports.
const FLOOR: u32 = 10_000;

/// Where the next search starts, relative to the window (a process-specific start so that test
/// binaries running at the same time mostly search different parts of it).
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`), or Linux's
/// default when it cannot be read.
pub fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// A loopback port outside the ephemeral range that is free now and that this process has not
/// handed out before.
///
/// # Panics
/// When every candidate port is in use (the window holds 10 000 ports).
pub fn reserve_port() -> u16 {
    let (low, high) = candidate_range(ephemeral_range().0);
    // First use: start at a pid-derived place in the window.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % (high - low),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    pick(low, high, &NEXT, |port| {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .unwrap_or_else(|| panic!("no free loopback port in {low}..{high}"))
}

/// The candidate ports `low..high`: the window just below the ephemeral range's start.
fn candidate_range(ephemeral_low: u32) -> (u32, u32) {
    let high = ephemeral_low.max(FLOOR + 1);
    (high.saturating_sub(WINDOW).max(FLOOR), high)
}

/// The next port in `low..high` (cycling from `next`) that `is_free` accepts.
fn pick(low: u32, high: u32, next: &AtomicU32, is_free: impl Fn(u16) -> bool) -> Option<u16> {
    let span = high - low;
    (0..span).find_map(|_| {
        let port = low + next.fetch_add(1, Ordering::Relaxed) % span;
        let port = u16::try_from(port).expect("ports are below 65536");
        is_free(port).then_some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_below_the_ephemeral_range_and_distinct() {
        let (ephemeral_low, _) = ephemeral_range();
        let ports: Vec<u16> = (0..50).map(|_| reserve_port()).collect();
        for &port in &ports {
            assert!(
                u32::from(port) < ephemeral_low,
                "port {port} is in the ephemeral range (from {ephemeral_low})"
            );
            TcpListener::bind(("127.0.0.1", port)).expect("the reserved port binds");
        }
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    }

    #[test]
    fn ports_in_use_are_skipped_and_the_search_wraps() {
        let next = AtomicU32::new(2);
        // 20002 and 20003 are "in use"; the search wraps past the end of 20000..20004.
        let picked = pick(20_000, 20_004, &next, |p| p != 20_002 && p != 20_003);
        assert_eq!(picked, Some(20_000));
        assert_eq!(pick(20_000, 20_004, &next, |_| false), None);
    }

    #[test]
    fn the_window_sits_just_below_the_ephemeral_range() {
        assert_eq!(candidate_range(32_768), (22_768, 32_768));
        // A range starting very low still yields ports above the well-known ones.
        assert_eq!(candidate_range(12_000), (10_000, 12_000));
    }
}
