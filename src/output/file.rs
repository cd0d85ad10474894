//! Output files whose disk blocks are reserved ahead of the writes. On Linux a write
//! into blocks not yet allocated costs the file system a delayed-allocation reservation
//! per page; into blocks reserved by `fallocate` it does not, which made writing a
//! large pcapng about a third cheaper (benches/convert.sh). Elsewhere, or where the
//! file system cannot reserve, the writes go on as plain writes.

use std::fs::File;
use std::io::{self, Write};

/// Bytes reserved at a time, ahead of the writes.
const STEP: u64 = 64 << 20;

/// A file written from start to end, its blocks reserved `STEP` bytes ahead. The file's
/// size is always what was written (the reservation lies beyond it); `flush` gives back
/// what was reserved and not written.
pub struct Reserved {
    file: File,
    written: u64,
    reserved: u64,
    /// The file system refused a reservation: plain writes from then on.
    plain: bool,
}

impl Reserved {
    pub fn new(file: File) -> Reserved {
        Reserved {
            file,
            written: 0,
            reserved: 0,
            plain: !cfg!(target_os = "linux"),
        }
    }

    /// Reserves the next `STEP` bytes beyond the end of the reservation.
    fn reserve(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{FallocateFlags, fallocate};
            let from = self.reserved.max(self.written);
            match fallocate(&self.file, FallocateFlags::KEEP_SIZE, from, STEP) {
                Ok(()) => self.reserved = from + STEP,
                // Not supported here, or no room for the reservation (the output itself
                // may still fit): write without one.
                Err(_) => self.plain = true,
            }
        }
    }
}

impl Write for Reserved {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.plain && self.written + data.len() as u64 > self.reserved {
            self.reserve();
        }
        let n = self.file.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    /// Flushes the file and gives back the blocks reserved beyond what was written.
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.reserved > self.written {
            // Truncating to the size it has frees the blocks beyond it.
            self.file.set_len(self.written)?;
            self.reserved = self.written;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_exactly_what_was_written() -> io::Result<()> {
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
        assert_eq!(r.reserved, r.written);
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
            // The reservation beyond the end was given back: no more blocks than the
            // data needs (st_blocks counts 512-byte units).
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&path)?.blocks();
            assert!(
                blocks * 512 < want.len() as u64 + (1 << 20),
                "{blocks} blocks for {} bytes",
                want.len()
            );
        }
        std::fs::remove_dir_all(&dir)
    }
}
