//! Discard reason codes (PTH_DropRsn): names and meanings from formats/discard-codes.csv,
//! extensible with the user's own table; codes without a name render by range.

use std::collections::HashMap;
use std::io::Read;

/// A discard reason code. Open newtype: every value renders, named or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscardCode(pub u16);

impl DiscardCode {
    pub fn is_discard(self) -> bool {
        self.0 != 0
    }

    /// Who discards packets with this code (the ranges are firm).
    pub fn layer(self) -> &'static str {
        match self.0 {
            0 => "none",
            1..=4095 => "OSA",
            4096..=8191 => "IP",
            8192..=12287 => "TCP",
            12288..=16383 => "UDP",
            16384..=20479 => "RAW",
            _ => "",
        }
    }
}

/// The built-in table, shipped in formats/.
const BUILTIN: &str = include_str!("../../formats/discard-codes.csv");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub meaning: String,
}

/// Code -> name and meaning.
#[derive(Clone, Debug)]
pub struct DiscardTable {
    entries: HashMap<u16, Entry>,
}

impl Default for DiscardTable {
    fn default() -> Self {
        let mut t = DiscardTable {
            entries: HashMap::new(),
        };
        // The built-in file is tested to parse; a failure here would be a build defect.
        let _ = t.extend_from(BUILTIN.as_bytes());
        t
    }
}

impl DiscardTable {
    /// Adds (or replaces) entries from a `code,name,meaning` CSV with a header row.
    /// Returns the number of rows read, or a message naming the bad line.
    pub fn extend_from(&mut self, src: impl Read) -> Result<usize, String> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(src);
        let mut n = 0;
        for (i, row) in rdr.records().enumerate() {
            let row = row.map_err(|e| format!("line {}: {e}", i + 2))?;
            let code = row.get(0).unwrap_or("");
            let code: u16 = code
                .parse()
                .map_err(|_| format!("line {}: code {code:?} is not a number 0-65535", i + 2))?;
            self.entries.insert(
                code,
                Entry {
                    name: row.get(1).unwrap_or("").to_string(),
                    meaning: row.get(2).unwrap_or("").to_string(),
                },
            );
            n += 1;
        }
        Ok(n)
    }

    pub fn get(&self, code: DiscardCode) -> Option<&Entry> {
        self.entries.get(&code.0)
    }

    /// `NAME (meaning)` for named codes, `TCP discard 8200` by range otherwise; empty
    /// for 0.
    pub fn describe(&self, code: DiscardCode) -> String {
        if code.0 == 0 {
            return String::new();
        }
        match self.get(code) {
            Some(e) if !e.name.is_empty() && !e.meaning.is_empty() => {
                format!("{} ({})", e.name, e.meaning)
            }
            Some(e) if !e.name.is_empty() => e.name.clone(),
            _ => match code.layer() {
                "" => format!("discard {}", code.0),
                layer => format!("{layer} discard {}", code.0),
            },
        }
    }

    /// The pcapng comment text: `discarded: 4114 IP_MAC_BRDCST (MAC broadcast ...)`.
    pub fn comment(&self, code: DiscardCode) -> String {
        match self.get(code) {
            Some(e) if !e.name.is_empty() => {
                format!("discarded: {} {}", code.0, self.describe(code))
            }
            _ => format!("discarded: {}", self.describe(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_names_codes() {
        let mut t = DiscardTable {
            entries: HashMap::new(),
        };
        assert!(t.extend_from(BUILTIN.as_bytes()).unwrap() >= 10);
        assert_eq!(
            t.comment(DiscardCode(4114)),
            "discarded: 4114 IP_MAC_BRDCST (MAC broadcast not accepted)"
        );
    }

    #[test]
    fn unnamed_codes_render_by_range() {
        let t = DiscardTable::default();
        assert_eq!(t.describe(DiscardCode(8200)), "TCP discard 8200");
        assert_eq!(t.describe(DiscardCode(17)), "OSA discard 17");
        assert_eq!(t.describe(DiscardCode(12300)), "UDP discard 12300");
        assert_eq!(t.describe(DiscardCode(16390)), "RAW discard 16390");
        assert_eq!(t.describe(DiscardCode(5000)), "IP discard 5000");
        assert_eq!(t.describe(DiscardCode(30000)), "discard 30000");
        assert_eq!(t.comment(DiscardCode(8200)), "discarded: TCP discard 8200");
        assert_eq!(t.describe(DiscardCode(0)), "");
    }

    #[test]
    fn user_table_extends_and_overrides() {
        let mut t = DiscardTable::default();
        let n = t
            .extend_from(
                "code,name,meaning\n8200,TCP_X,\"custom, with comma\"\n4114,MINE,mine\n".as_bytes(),
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(t.describe(DiscardCode(8200)), "TCP_X (custom, with comma)");
        assert_eq!(t.describe(DiscardCode(4114)), "MINE (mine)");
        assert!(
            t.extend_from("code,name\nabc,x\n".as_bytes())
                .unwrap_err()
                .contains("line 2")
        );
    }
}
