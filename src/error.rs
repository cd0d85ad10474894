//! Fatal errors: the ones that stop work on a whole input. Problems inside a trace are
//! not errors but `trace::Issue`s in the report, and decoding goes on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unlocated(#[from] std::io::Error),
    #[error("{path}: not a packet capture: {reason}")]
    Capture { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("pcap writer: {0}")]
    Pcap(String),
    /// One input of several (`convert --merge`) failed.
    #[error("{0}: {1}")]
    Input(String, Box<Error>),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
