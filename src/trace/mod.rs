//! First stage of the flow: downloaded trace bytes -> CTE records. Framing, CTE
//! synchronisation, binrw record definitions, EBCDIC names and TOD times.
//! Everything here is independent of what the records carry (packet or socket data).

pub mod ahead;
pub mod cte;
pub mod discard;
pub mod ebcdic;
pub mod framing;
pub mod pthdr;
pub mod report;
pub mod scan;
pub mod tod;

pub use cte::{CteHeader, FormatId};
pub use discard::{DiscardCode, DiscardTable};
pub use framing::Framing;
pub use pthdr::{DeviceType, PtHdr};
pub use report::{Issue, IssueKind, Report};
pub use scan::{Cte, Layout, Options, Scanner};
pub use tod::Tod;
