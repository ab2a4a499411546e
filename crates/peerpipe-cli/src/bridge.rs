//! `peerpipe bridge`: relays bytes between two links, optionally recording both directions.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use crate::exit::{CliError, Code};
use crate::link::{self, LinkSpec, RawStream};
use crate::sniff::{DIRECTIONS, RECORD_MAGIC};

/// Writes records: `u64` LE microseconds since the start, `u8` direction (0: bytes from the
/// first link, 1: from the second), `u32` LE length, the bytes.
struct Recorder {
    file: BufWriter<File>,
    t0: Instant,
}

impl Recorder {
    fn create(path: &Path) -> std::io::Result<Self> {
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(RECORD_MAGIC)?;
        file.flush()?;
        Ok(Recorder {
            file,
            t0: Instant::now(),
        })
    }

    fn record(&mut self, dir: u8, bytes: &[u8]) -> std::io::Result<()> {
        let micros = self.t0.elapsed().as_micros() as u64;
        self.file.write_all(&micros.to_le_bytes())?;
        self.file.write_all(&[dir])?;
        self.file.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.file.write_all(bytes)?;
        // Flushed at once: the recording is readable while the bridge runs, and complete
        // when it is killed.
        self.file.flush()
    }
}

/// How one direction ended.
struct Done {
    dir: u8,
    result: Result<u64, String>,
}

fn pump(
    dir: u8,
    mut from: Box<dyn Read + Send>,
    mut to: Box<dyn Write + Send>,
    recorder: Option<Arc<Mutex<Recorder>>>,
    done: mpsc::Sender<Done>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    let result = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(format!("read: {e}")),
        };
        if let Some(r) = &recorder {
            if let Ok(mut r) = r.lock() {
                if let Err(e) = r.record(dir, &buf[..n]) {
                    break Err(format!("recording: {e}"));
                }
            }
        }
        if let Err(e) = to.write_all(&buf[..n]).and_then(|()| to.flush()) {
            break Err(format!("write: {e}"));
        }
        total += n as u64;
        tracing::trace!(dir = DIRECTIONS[usize::from(dir)], n, "relayed");
    };
    let _ = done.send(Done { dir, result });
}

/// Opens both links (at the same time: either may wait for the other), then relays until
/// one side ends.
pub fn run(a: &LinkSpec, b: &LinkSpec, record: Option<&Path>) -> Result<(), CliError> {
    if a.is_stdio() && b.is_stdio() {
        return Err(CliError::new(
            Code::Usage,
            "only one side of a bridge can be stdio",
        ));
    }
    let recorder = match record {
        Some(path) => Some(Arc::new(Mutex::new(Recorder::create(path).map_err(
            |e| {
                CliError::new(
                    Code::Other,
                    format!("cannot create {}: {e}", path.display()),
                )
            },
        )?))),
        None => None,
    };
    let (sa, sb) = std::thread::scope(|s| {
        let ta = s.spawn(|| link::raw(a));
        let tb = s.spawn(|| link::raw(b));
        (ta.join(), tb.join())
    });
    let joined = |r: std::thread::Result<Result<RawStream, CliError>>| {
        r.unwrap_or_else(|_| Err(CliError::new(Code::Other, "a link's thread panicked")))
    };
    let (sa, sb) = (joined(sa)?, joined(sb)?);
    tracing::info!(%a, %b, "bridging");
    let (tx, rx) = mpsc::channel();
    let (ra, wa, rb, wb) = (sa.reader, sa.writer, sb.reader, sb.writer);
    {
        let (rec, tx) = (recorder.clone(), tx.clone());
        std::thread::spawn(move || pump(0, ra, wb, rec, tx));
    }
    {
        let rec = recorder.clone();
        std::thread::spawn(move || pump(1, rb, wa, rec, tx));
    }
    // The first side to end ends the bridge (as the peers' own links would end).
    let done = rx
        .recv()
        .map_err(|_| CliError::new(Code::Other, "relay threads vanished"))?;
    let (from, to) = if done.dir == 0 { (a, b) } else { (b, a) };
    match done.result {
        Ok(n) => {
            tracing::info!(%from, bytes = n, "closed");
            Ok(())
        }
        Err(e) => Err(CliError::new(
            Code::Gone,
            format!("relaying {from} to {to}: {e}"),
        )),
    }
}
