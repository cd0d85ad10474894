//! What a decode run found besides packets: counters and positioned issues. Every
//! skipped byte, resynchronisation, unknown record and lost segment ends up here so the
//! summary can tell "nothing lost" from "N bytes at offsets ... could not be decoded".

use std::collections::BTreeMap;

use super::cte::FormatId;

/// At most this many issues are kept with their offsets; the rest are only counted.
pub const MAX_ISSUES: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssueKind {
    /// Bytes that could not be decoded and were skipped.
    Skipped,
    /// Descriptor words out of order or inconsistent.
    Framing,
    /// The file ends inside a record or CTE.
    Truncated,
    /// A record of a format id we do not know.
    UnknownRecord,
    /// A segmented record that could not be completed, or a segment without its set.
    Segment,
    /// Something odd that did not cost any data.
    Warning,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Skipped => "skipped",
            IssueKind::Framing => "framing",
            IssueKind::Truncated => "truncated",
            IssueKind::UnknownRecord => "unknown record",
            IssueKind::Segment => "segment",
            IssueKind::Warning => "warning",
        }
    }

    /// Whether the issue means data was lost or not understood (exit status 1).
    pub fn is_loss(self) -> bool {
        !matches!(self, IssueKind::Warning)
    }
}

/// One problem at a file offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub offset: u64,
    /// Logical record number (from 1) when known.
    pub record: Option<u64>,
    pub kind: IssueKind,
    /// Bytes concerned (skipped bytes), 0 when not about a byte range.
    pub len: u64,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "offset {} (0x{:X})", self.offset, self.offset)?;
        if let Some(r) = self.record {
            write!(f, ", record {r}")?;
        }
        write!(f, ": {}: {}", self.kind.as_str(), self.message)
    }
}

/// Counters for one input file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub bytes_read: u64,
    /// Logical records (after joining spanned segments).
    pub records: u64,
    /// Bytes of RDWs and BDWs.
    pub framing_bytes: u64,
    /// Bytes of writer record headers stripped.
    pub header_bytes: u64,
    /// Zero fill after an end-of-buffer mark or at the end of the file.
    pub padding_bytes: u64,
    /// Bytes that could not be decoded.
    pub bytes_skipped: u64,
    pub resyncs: u64,
    /// Bytes of the CTEs found.
    pub cte_bytes: u64,
    /// CTEs by format id (lost-record notices under their own id).
    pub ctes: BTreeMap<FormatId, u64>,
    /// Lost-record notices (format id high byte X'FF').
    pub lost_notices: u64,
    pub issues: Vec<Issue>,
    /// Issues beyond MAX_ISSUES, counted only.
    pub issues_not_kept: u64,
    /// Number of issues that mean lost or undecoded data.
    pub losses: u64,
    /// When the issue reported last (kept or not) is skipped bytes: where they end and
    /// why, so that the rest of the same gap joins it.
    gap: Option<(u64, String)>,
}

impl Report {
    pub fn issue(
        &mut self,
        offset: u64,
        record: Option<u64>,
        kind: IssueKind,
        len: u64,
        message: String,
    ) {
        if kind.is_loss() {
            self.losses += 1;
        }
        self.keep(Issue {
            offset,
            record,
            kind,
            len,
            message,
        });
    }

    /// Keeps an issue, or counts it beyond `MAX_ISSUES`; its loss is counted by the
    /// caller (`issue`), or was in another report (one found by `scan_ahead`, see
    /// `take_issues`).
    pub fn keep(&mut self, issue: Issue) {
        self.gap = None;
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(issue);
        } else {
            self.issues_not_kept += 1;
        }
    }

    /// Takes back the issues of a scan that ran ahead (`scan_ahead`): `kept` holds them
    /// (through `keep`) in order with those found in its CTEs afterwards (through
    /// `issue`). `self` is the scan's report: its counters, and the losses of its own
    /// issues.
    pub fn take_issues(&mut self, kept: Report) {
        self.gap = None;
        self.losses += kept.losses;
        self.issues_not_kept += kept.issues_not_kept;
        self.issues = kept.issues;
    }

    /// Records `len` skipped bytes at `offset`.
    pub fn skip(&mut self, offset: u64, record: Option<u64>, len: u64, why: &str) {
        self.bytes_skipped += len;
        // A gap reported in pieces (a long resynchronisation) stays one issue, also
        // when it lies beyond the issues kept.
        if let Some((end, gap_why)) = &mut self.gap
            && *end == offset
            && gap_why == why
        {
            *end += len;
            if let Some(last) = self.issues.last_mut()
                && last.kind == IssueKind::Skipped
                && last.offset + last.len == offset
                && last.message.ends_with(why)
            {
                last.len += len;
                last.message = format!("{} bytes skipped: {why}", last.len);
            }
            return;
        }
        self.issue(
            offset,
            record,
            IssueKind::Skipped,
            len,
            format!("{len} bytes skipped: {why}"),
        );
        self.gap = Some((offset + len, why.to_string()));
    }

    /// The report of a finished run: no gap left open (so that reports of the same
    /// findings compare equal however they were reached).
    pub fn finished(mut self) -> Report {
        self.gap = None;
        self
    }

    /// Bytes read that no counter explains; 0 when every byte is accounted for as
    /// descriptor, writer header, padding, skipped or CTE bytes.
    pub fn unaccounted(&self) -> i128 {
        self.bytes_read as i128
            - (self.framing_bytes
                + self.header_bytes
                + self.padding_bytes
                + self.bytes_skipped
                + self.cte_bytes) as i128
    }

    /// True when nothing was skipped, resynchronised, truncated or left undecoded.
    pub fn clean(&self) -> bool {
        self.losses == 0 && self.bytes_skipped == 0 && self.resyncs == 0
    }
}
