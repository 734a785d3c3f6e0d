//! Follows the end of a log while another thread appends to it: the follower sleeps until the
//! log's offset listener says records were appended, then reads them. No async runtime — the
//! listener wakes a plain thread through a channel (the node forwards it into a Tokio `watch`).
//!
//! ```sh
//! cargo run -p proglog-log --example follow
//! ```

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use proglog_log::{Log, LogConfig};

const RECORDS: u64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(dir.path(), LogConfig::default())?);

    // Called under the log's writer lock: only hand the offset over, never block.
    let (ends, new_end) = mpsc::channel();
    log.add_offset_listener(move |next| {
        let _ = ends.send(next);
    });

    let writer = Arc::clone(&log);
    let producer = std::thread::spawn(move || -> proglog_log::Result<()> {
        for i in 0..RECORDS {
            writer.append(format!("record {i}").as_bytes())?;
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.sync()
    });

    let mut position = 0;
    while position < RECORDS {
        let end = new_end.recv_timeout(Duration::from_secs(10))?;
        for record in log.reader(position).take((end - position) as usize) {
            let (offset, bytes) = record?;
            println!("{offset}: {}", String::from_utf8_lossy(&bytes));
            position = offset + 1;
        }
    }
    producer.join().expect("the producer panicked")?;
    Ok(())
}
