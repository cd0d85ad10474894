//! zctrace: z/OS TCP/IP component traces (SYSTCPDA packet trace, SYSTCPOT OSAENTA) to
//! pcapng and CSV.
//!
//! Data flows one way; each module imports only what is upstream of it:
//! `trace` (bytes -> CTE records) -> `packet` (normalized packets, segment reassembly)
//! -> `net` (IP/TCP/UDP views, filters) -> `output` (pcapng, libpcap, dump) ->
//! `convert` (one input file end to end). `synth` goes the other way (capture -> trace)
//! and exists to test the decoder against real packets.

pub mod analyze;
pub mod convert;
pub mod error;
pub mod fuzzing;
pub mod net;
pub mod output;
pub mod packet;
pub mod synth;
pub mod trace;

pub use error::Error;
