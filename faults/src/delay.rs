//! Packet delay, jitter and reordering without `tc netem`: a userspace NFQUEUE delayer.
//!
//! Some kernels (this project's VMs among them) are built without `CONFIG_NET_SCH_NETEM`. There
//! the nemesis sends a node's outgoing packets to an NFQUEUE (`iptables -j NFQUEUE
//! --queue-bypass`) and runs this delayer inside the node's namespace (`proglog-faults delay`):
//! it binds the queue over a netfilter netlink socket (metadata only, no packet copies) and gives
//! each packet its `ACCEPT` verdict after a delay drawn from a normal distribution (mean, jitter
//! as standard deviation), so packets also leave out of order. `--delay-pct` delays only that
//! share of packets (the rest go at once): reordering. Loss and duplication are iptables rules
//! (`statistic` DROP, `TEE`), see [`crate::nemesis`].
//!
//! The netlink messages are built and parsed here by hand (the few nfnetlink_queue structures
//! needed), with `socket2` for the socket, without `unsafe`. [`crate::delayers`] manages the
//! delayer processes and their iptables rules for the nemesis.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};

use crate::netns::argv;

const AF_INET: u8 = 2;
const AF_NETLINK: i32 = 16;
const NETLINK_NETFILTER: i32 = 12;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;

/// The delayer's settings (the `proglog-faults delay` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayConfig {
    pub queue: u16,
    pub delay_ms: f64,
    /// Standard deviation of the delay.
    pub jitter_ms: f64,
    /// Share of packets delayed (the others are accepted at once), 0–100.
    pub delay_pct: u32,
}

impl DelayConfig {
    /// The delayer's command-line flags.
    pub fn args(&self) -> Vec<String> {
        argv(&[
            "delay",
            "--queue",
            &self.queue.to_string(),
            "--delay-ms",
            &self.delay_ms.to_string(),
            "--jitter-ms",
            &self.jitter_ms.to_string(),
            "--delay-pct",
            &self.delay_pct.to_string(),
        ])
    }

    /// A delay for one packet (zero for the packets not delayed).
    fn draw(&self, rng: &mut impl Rng) -> Duration {
        if rng.random_range(0..100) >= self.delay_pct {
            return Duration::ZERO;
        }
        // Box-Muller: a standard normal sample.
        let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        Duration::from_secs_f64((self.delay_ms + z * self.jitter_ms).max(0.0) / 1000.0)
    }
}

/// One netlink message: header, nfgenmsg (family, version 0, `res_id` = queue), attributes.
fn message(
    msg_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    queue: u16,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut body = vec![family, 0];
    body.extend_from_slice(&queue.to_be_bytes());
    for (kind, payload) in attrs {
        let len = u16::try_from(4 + payload.len()).expect("small attribute");
        body.extend_from_slice(&len.to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(payload);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(
        &u32::try_from(16 + body.len())
            .expect("small message")
            .to_ne_bytes(),
    );
    msg.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg_type).to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// The configuration messages: bind `queue` for IPv4, copy metadata only, a long queue that
/// accepts (rather than drops) when full.
pub fn config_messages(queue: u16) -> Vec<Vec<u8>> {
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    let bind = [NFQNL_CFG_CMD_BIND, 0, 0, AF_INET];
    let mut params = 0u32.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_META);
    let fail_open = NFQA_CFG_F_FAIL_OPEN.to_be_bytes();
    vec![
        message(
            NFQNL_MSG_CONFIG,
            flags,
            1,
            0,
            queue,
            &[(NFQA_CFG_CMD, &bind)],
        ),
        message(
            NFQNL_MSG_CONFIG,
            flags,
            2,
            0,
            queue,
            &[(NFQA_CFG_PARAMS, &params)],
        ),
        message(
            NFQNL_MSG_CONFIG,
            flags,
            3,
            0,
            queue,
            &[
                (NFQA_CFG_QUEUE_MAXLEN, &8192u32.to_be_bytes()),
                (NFQA_CFG_MASK, &fail_open),
                (NFQA_CFG_FLAGS, &fail_open),
            ],
        ),
    ]
}

/// The `ACCEPT` verdict for packet `id`.
pub fn verdict_message(queue: u16, id: u32) -> Vec<u8> {
    let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    message(
        NFQNL_MSG_VERDICT,
        NLM_F_REQUEST,
        0,
        0,
        queue,
        &[(NFQA_VERDICT_HDR, &hdr)],
    )
}

/// What one received netlink message says.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A queued packet's id.
    Packet(u32),
    /// An acknowledgement (0) or error (negative errno) for request `seq`.
    Ack {
        seq: u32,
        error: i32,
    },
    Other,
}

/// Parses the netlink messages in one datagram.
pub fn parse(mut buf: &[u8]) -> Vec<Received> {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = (u32_at(buf, 0) as usize).min(buf.len());
        if len < 16 {
            break;
        }
        let (msg, rest) = buf.split_at(len.next_multiple_of(4).min(buf.len()));
        buf = rest;
        let kind = u16_at(msg, 4);
        if kind == NLMSG_ERROR && len >= 24 {
            let error = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
            out.push(Received::Ack {
                seq: u32_at(msg, 28.min(len - 4)),
                error,
            });
            continue;
        }
        if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            out.push(Received::Other);
            continue;
        }
        let mut attrs = &msg[20.min(len)..len];
        let mut id = None;
        while attrs.len() >= 4 {
            let alen = usize::from(u16_at(attrs, 0));
            if alen < 4 || alen > attrs.len() {
                break;
            }
            if u16_at(attrs, 2) & 0x3fff == NFQA_PACKET_HDR && alen >= 8 {
                id = Some(u32::from_be_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]));
            }
            attrs = &attrs[alen.next_multiple_of(4).min(attrs.len())..];
        }
        out.push(id.map_or(Received::Other, Received::Packet));
    }
    out
}

/// Runs the delayer (inside a node's namespace) until killed. Prints `ready` once bound.
pub fn run_delayer(config: DelayConfig) -> Result<()> {
    let socket = Socket::new(
        Domain::from(AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(NETLINK_NETFILTER)),
    )
    .context("netlink socket")?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    for msg in config_messages(config.queue) {
        socket.send(&msg).context("configuring the queue")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        let n = (&socket)
            .read(&mut buf)
            .context("waiting for the queue's ack")?;
        for received in parse(&buf[..n]) {
            if let Received::Ack { error, .. } = received
                && error != 0
            {
                bail!("binding NFQUEUE {}: errno {}", config.queue, -error);
            }
        }
    }
    println!("ready");
    let mut rng = rand::rng();
    let mut pending: BinaryHeap<Reverse<(Instant, u32)>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = pending.peek().copied() {
            if at > now {
                break;
            }
            pending.pop();
            socket.send(&verdict_message(config.queue, id))?;
        }
        let wait = pending
            .peek()
            .map_or(Duration::from_millis(100), |Reverse((at, _))| {
                at.saturating_duration_since(now)
                    .max(Duration::from_micros(200))
            });
        socket.set_read_timeout(Some(wait))?;
        let n = match (&socket).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            // ENOBUFS: the kernel dropped messages (it accepts them: fail-open); go on.
            Err(e) if e.raw_os_error() == Some(105) => continue,
            Err(e) => return Err(e.into()),
        };
        for received in parse(&buf[..n]) {
            if let Received::Packet(id) = received {
                let delay = config.draw(&mut rng);
                if delay.is_zero() {
                    socket.send(&verdict_message(config.queue, id))?;
                } else {
                    pending.push(Reverse((Instant::now() + delay, id)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_verdict_messages() {
        let msgs = config_messages(0);
        assert_eq!(msgs.len(), 3);
        // Bind: nlmsghdr (16) + nfgenmsg (4) + one 8-byte attribute.
        let bind = &msgs[0];
        assert_eq!(bind.len(), 28);
        assert_eq!(u32::from_ne_bytes(bind[0..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(bind[4..6].try_into().unwrap()), 0x0302);
        assert_eq!(&bind[24..28], &[1, 0, 0, 2]);
        // Params: 5-byte payload padded to 8.
        assert_eq!(msgs[1].len(), 16 + 4 + 12);
        let verdict = verdict_message(3, 0x01020304);
        assert_eq!(
            u16::from_ne_bytes(verdict[4..6].try_into().unwrap()),
            0x0301
        );
        assert_eq!(&verdict[18..20], &[0, 3], "queue number, big-endian");
        assert_eq!(&verdict[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn parses_packets_and_acks() {
        // A packet message: the packet header attribute first, then another attribute.
        let mut hdr = 7u32.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[8, 0, 3]);
        let packet = message(
            NFQNL_MSG_PACKET,
            0,
            0,
            AF_INET,
            0,
            &[(NFQA_PACKET_HDR, &hdr), (9, &[1, 2])],
        );
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&(-1i32).to_ne_bytes());
        ack.extend_from_slice(&msg_header_with_seq(5));
        let mut both = packet.clone();
        both.extend_from_slice(&ack);
        assert_eq!(
            parse(&both),
            vec![Received::Packet(7), Received::Ack { seq: 5, error: -1 }]
        );
        assert_eq!(parse(&[1, 2, 3]), vec![]);
    }

    fn msg_header_with_seq(seq: u32) -> Vec<u8> {
        let mut h = vec![0u8; 8];
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&[0; 4]);
        h
    }

    #[test]
    fn delays_follow_the_settings() {
        let mut rng = rand::rng();
        let all = DelayConfig {
            queue: 0,
            delay_ms: 100.0,
            jitter_ms: 50.0,
            delay_pct: 100,
        };
        let draws: Vec<f64> = (0..2000)
            .map(|_| all.draw(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((90.0..110.0).contains(&mean), "{mean}");
        let none = DelayConfig {
            delay_pct: 0,
            ..all
        };
        assert!(none.draw(&mut rng).is_zero());
        assert_eq!(
            all.args().join(" "),
            "delay --queue 0 --delay-ms 100 --jitter-ms 50 --delay-pct 100"
        );
    }
}
