//! Appends records to a log in a directory, makes them durable with one `sync` (group commit),
//! and reads them back — also after reopening, as a restarted process would.
//!
//! ```sh
//! cargo run -p proglog-log --example append_and_read -- /tmp/demo-log first second third
//! ```

use proglog_log::{Log, LogConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: append_and_read DIR [RECORD]...")?;
    let records: Vec<String> = args.collect();

    let log = Log::open(&dir, LogConfig::default())?;
    let appended = log.append_batch(&records.iter().map(String::as_bytes).collect::<Vec<_>>())?;
    // Appended records are readable at once; `sync` makes them survive a power loss too.
    log.sync()?;
    println!("appended offsets {appended:?}");
    log.close()?;

    let log = Log::open(&dir, LogConfig::default())?;
    for record in log.reader(log.lowest_offset()) {
        let (offset, bytes) = record?;
        println!("{offset}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(())
}
