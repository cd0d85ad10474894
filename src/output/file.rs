//! Output files whose disk blocks are reserved just before each write. On Linux a
//! write into blocks not yet allocated costs the file system a delayed-allocation
//! reservation per page; into blocks allocated by `fallocate` it does not, which made
//! writing a large pcapng about a third cheaper (benches/convert.sh). Only the bytes
//! about to be written are reserved, never more: a reservation cannot take room that
//! another output file needs. Elsewhere, or where the file system cannot reserve, the
//! writes go on as plain writes.

use std::fs::File;
use std::io::{self, Write};

/// A file written from start to end, the blocks of each write allocated just before
/// it. The file's size is always what was written.
pub struct Reserved {
    file: File,
    written: u64,
    /// The file system refused a reservation: plain writes from then on.
    plain: bool,
}

impl Reserved {
    pub fn new(file: File) -> Reserved {
        Reserved {
            file,
            written: 0,
            plain: !cfg!(target_os = "linux"),
        }
    }

    /// Allocates the blocks of the next `len` bytes.
    fn reserve(&mut self, len: u64) {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{FallocateFlags, fallocate};
            if fallocate(&self.file, FallocateFlags::KEEP_SIZE, self.written, len).is_err() {
                // Not supported here, or no room (the write may still fit, and says so
                // if not): write without reserving, after giving back whatever the
                // failed call allocated (a file system may keep part of it).
                self.plain = true;
                let _ = self.file.set_len(self.written);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = len;
    }
}

impl Write for Reserved {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.plain && !data.is_empty() {
            self.reserve(data.len() as u64);
        }
        let n = self.file.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_exactly_what_was_written_and_no_more_blocks() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("zctrace-reserved-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("out.bin");
        let mut want = Vec::new();
        let mut r = Reserved::new(File::create(&path)?);
        for i in 0..3000u32 {
            let chunk = vec![(i % 251) as u8; (i % 977) as usize];
            r.write_all(&chunk)?;
            want.extend(chunk);
        }
        // The size follows the writes, not the reservation.
        assert_eq!(std::fs::metadata(&path)?.len(), want.len() as u64);
        r.flush()?;
        drop(r);
        let got = std::fs::read(&path)?;
        assert!(
            got == want,
            "{} bytes back, {} written",
            got.len(),
            want.len()
        );
        #[cfg(target_os = "linux")]
        {
            // Nothing reserved beyond what was written: no more blocks than the data
            // needs (st_blocks counts 512-byte units).
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&path)?.blocks();
            assert!(
                blocks * 512 < want.len() as u64 + (64 << 10),
                "{blocks} blocks for {} bytes",
                want.len()
            );
        }
        std::fs::remove_dir_all(&dir)
    }
}
