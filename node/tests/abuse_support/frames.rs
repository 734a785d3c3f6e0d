//! A hand-written HTTP/2 client for what even the `h2` crate will not send: streams beyond the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS`. It writes the connection preface, then HEADERS
//! frames (HPACK literals, no dynamic table) for new streams, and counts the server's answers:
//! response HEADERS (the stream was opened and its call started), RST_STREAM with
//! REFUSED_STREAM, and GOAWAY. It never acknowledges pings: the tests end long before the
//! node's keep-alive would close it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::server_support::TestNode;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

/// What the server answered to the streams a [`FloodingClient`] opened.
#[derive(Debug, Default, Clone)]
pub struct Answers {
    /// Streams the server answered with response headers (calls it started).
    pub opened: HashSet<u32>,
    /// Streams it refused (RST_STREAM REFUSED_STREAM).
    pub refused: HashSet<u32>,
    /// Whether it sent GOAWAY (closing the connection to new streams).
    pub goaway: bool,
    /// Whether it closed the connection.
    pub closed: bool,
}

/// A raw HTTP/2 connection over the fixture's mutual TLS. A task reads the server's frames
/// into [`FloodingClient::answers`].
pub struct FloodingClient {
    writer: WriteHalf<TlsStream<TcpStream>>,
    answers: Arc<Mutex<Answers>>,
    reader: JoinHandle<()>,
    next_stream: u32,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK "literal header field without indexing, new name" (lengths under 127, no Huffman).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    for text in [name, value] {
        block.push(
            u8::try_from(text.len())
                .ok()
                .filter(|n| *n < 127)
                .expect("short"),
        );
        block.extend_from_slice(text.as_bytes());
    }
}

/// The header block of a `log.v1.Log/{method}` call.
fn call_headers(method: &str) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", "POST");
    literal(&mut block, ":scheme", "https");
    literal(&mut block, ":authority", "localhost");
    literal(&mut block, ":path", &format!("/log.v1.Log/{method}"));
    literal(&mut block, "content-type", "application/grpc");
    literal(&mut block, "te", "trailers");
    block
}

/// Reads one frame: its type, flags, stream and payload (`None` once the connection is closed).
async fn read_frame(reader: &mut Reader) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut header = [0u8; 9];
    reader.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let stream = u32::from_be_bytes(header[5..9].try_into().expect("4 bytes")) & !(1 << 31);
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.ok()?;
    Some((header[3], header[4], stream, payload))
}

type Reader = ReadHalf<TlsStream<TcpStream>>;

impl FloodingClient {
    /// Connects as `root`, exchanges SETTINGS (so the server's stream limit is in force), and
    /// starts reading the server's answers.
    pub async fn connect(node: &TestNode, tls: Arc<rustls::ClientConfig>) -> Self {
        let tcp = TcpStream::connect(node.addr).await.expect("TCP connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .expect("mutual TLS handshake");
        let (mut reader, mut writer) = tokio::io::split(tls);
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        writer.write_all(&hello).await.expect("preface");
        loop {
            let (kind, flags, _, _) = read_frame(&mut reader).await.expect("server SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                break;
            }
        }
        writer
            .write_all(&frame(SETTINGS, ACK, 0, &[]))
            .await
            .expect("SETTINGS ACK");
        let answers = Arc::new(Mutex::new(Answers::default()));
        let reader = tokio::spawn(read_answers(reader, Arc::clone(&answers)));
        Self {
            writer,
            answers,
            reader,
            next_stream: 1,
        }
    }

    /// Opens `count` more streams calling `method`, whatever the server's stream limit (the
    /// request bodies never start).
    pub async fn open_streams(&mut self, method: &str, count: usize) {
        let block = call_headers(method);
        let mut batch = Vec::new();
        for _ in 0..count {
            batch.extend(frame(HEADERS, END_HEADERS, self.next_stream, &block));
            self.next_stream += 2;
            if batch.len() > 64 * 1024 {
                self.writer.write_all(&batch).await.expect("HEADERS");
                batch.clear();
            }
        }
        self.writer.write_all(&batch).await.expect("HEADERS");
        self.writer.flush().await.expect("flush");
    }

    /// What the server answered so far.
    pub fn answers(&self) -> Answers {
        self.answers.lock().expect("answers").clone()
    }
}

impl Drop for FloodingClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_answers(mut reader: Reader, answers: Arc<Mutex<Answers>>) {
    while let Some((kind, _, stream, payload)) = read_frame(&mut reader).await {
        let mut answers = answers.lock().expect("answers");
        match kind {
            HEADERS => {
                answers.opened.insert(stream);
            }
            RST_STREAM if payload[..] == REFUSED_STREAM.to_be_bytes() => {
                answers.refused.insert(stream);
            }
            GOAWAY => answers.goaway = true,
            _ => {}
        }
    }
    answers.lock().expect("answers").closed = true;
}
