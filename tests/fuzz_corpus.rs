//! Replays the cargo-fuzz corpus (fuzz/corpus/<target>/*) and the samples through the
//! same entry points the fuzz targets call, so every input the fuzzer kept stays a test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for dir in [root.join("fuzz/corpus").join(target), root.join("samples")] {
        if let Ok(d) = std::fs::read_dir(&dir) {
            for e in d.flatten() {
                if e.path().is_file() {
                    inputs.push(std::fs::read(e.path()).unwrap());
                }
            }
        }
    }
    for i in &inputs {
        f(i);
    }
    inputs.len()
}

#[test]
fn corpus_framing() {
    assert!(replay("framing", zctrace::fuzzing::framing) > 5);
}

#[test]
fn corpus_scan() {
    assert!(replay("scan", zctrace::fuzzing::scan) > 5);
}

#[test]
fn corpus_pthdr() {
    assert!(replay("pthdr", zctrace::fuzzing::pthdr) > 5);
}

#[test]
fn corpus_reassembly() {
    assert!(replay("reassembly", zctrace::fuzzing::reassembly) > 5);
}

#[test]
fn corpus_convert() {
    assert!(replay("convert", zctrace::fuzzing::convert) > 5);
}

#[test]
fn corpus_ftp() {
    assert!(replay("ftp", zctrace::fuzzing::ftp) > 5);
}

#[test]
fn corpus_tls() {
    assert!(replay("tls", zctrace::fuzzing::tls) > 5);
}

#[test]
fn corpus_msg() {
    assert!(replay("msg", zctrace::fuzzing::msg) > 5);
}

#[test]
fn corpus_stream() {
    assert!(replay("stream", zctrace::fuzzing::stream) > 5);
}

#[test]
fn corpus_analysis() {
    assert!(replay("analysis", zctrace::fuzzing::analysis) > 5);
}

#[test]
fn corpus_path() {
    assert!(replay("path", zctrace::fuzzing::path) > 5);
}

#[test]
fn corpus_merge() {
    assert!(replay("merge", zctrace::fuzzing::merge) > 5);
}
