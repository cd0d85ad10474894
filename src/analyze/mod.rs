//! Traffic analysis: sessions, TCP stream reassembly and the protocol decoders (FTP,
//! TLS, per-packet messages) that feed the CSV tables. Downstream of `net` (it reads
//! packets through its views), upstream of `output` (which writes what it finds).

pub mod engine;
pub mod ftp;
pub mod msg;
pub mod path;
pub mod rows;
pub mod stream;
pub mod tls;

pub use engine::{Analyzer, Input, Options, Socket, Stats};

/// Direction of stream bytes within a connection: from the client (the side that
/// opened it) to the server, or back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    pub fn flip(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}
