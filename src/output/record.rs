//! One CSV record from a row struct: a serde serializer that appends the fields of a
//! flat struct (text, integers, options, booleans) to a byte buffer, quoted the way the
//! csv crate quotes (RFC 4180: a field holding a comma, a quote, CR or LF). The csv
//! crate's per-field machinery was a tenth of the analysis time for the session and
//! FTP tables; a test compares every kind of field with the crate's output.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// Appends `row` as one record (fields, then `\n`) to `out`. Fails only for shapes a
/// CSV cell cannot hold (maps, sequences, floats), which no row has.
pub fn append(out: &mut Vec<u8>, row: &impl Serialize) -> Result<(), Error> {
    let start = out.len();
    let mut w = Record { out };
    if let Err(e) = row.serialize(&mut w) {
        w.out.truncate(start);
        return Err(e);
    }
    // The last field ends the record, not a separator.
    if w.out.len() > start {
        w.out.pop();
    }
    w.out.push(b'\n');
    Ok(())
}

/// A field `s`, quoted when it must be, then `,`.
pub fn push_str(b: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|c| matches!(c, b',' | b'"' | b'\r' | b'\n')) {
        b.push(b'"');
        for c in s.bytes() {
            if c == b'"' {
                b.push(b'"');
            }
            b.push(c);
        }
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
    b.push(b',');
}

/// A number field (`None`: empty), then `,`.
pub fn push_num(b: &mut Vec<u8>, v: Option<u64>) {
    if let Some(mut v) = v {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        b.extend_from_slice(&d[i..]);
    }
    b.push(b',');
}

fn push_signed(b: &mut Vec<u8>, v: i128) {
    if v < 0 {
        b.push(b'-');
    }
    let a = v.unsigned_abs();
    match u64::try_from(a) {
        Ok(a) => push_num(b, Some(a)),
        Err(_) => push_str(b, &a.to_string()),
    }
}

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Error> {
    Err(Error(format!("a CSV cell cannot hold {what}")))
}

struct Record<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a, 'b> ser::Serializer for &'b mut Record<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        push_str(self.out, if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.serialize_i128(i128::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        push_signed(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        push_num(self.out, Some(u64::from(v)));
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        push_num(self.out, Some(u64::from(v)));
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        push_num(self.out, Some(u64::from(v)));
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        push_num(self.out, Some(v));
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        match u64::try_from(v) {
            Ok(v) => push_num(self.out, Some(v)),
            Err(_) => push_str(self.out, &v.to_string()),
        }
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        unsupported("a float")
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        unsupported("a float")
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        push_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        push_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(b',');
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    // As the csv crate does: a unit struct is its name.
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.serialize_str(name)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        unsupported("an enum with data")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        unsupported("a sequence")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unsupported("an enum with data")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        unsupported("a map")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        unsupported("an enum with data")
    }
}

impl<'a, 'b> ser::SerializeStruct for &'b mut Record<'a> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<'a, 'b> ser::SerializeTuple for &'b mut Record<'a> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_says(r: &impl Serialize) -> String {
        let mut w = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        w.serialize(r).ok();
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    fn ours(r: &impl Serialize) -> String {
        let mut b = Vec::new();
        append(&mut b, r).ok();
        String::from_utf8(b).unwrap_or_default()
    }

    #[derive(Serialize)]
    struct Every {
        text: String,
        quoted: &'static str,
        lines: String,
        empty: String,
        small: u8,
        port: Option<u16>,
        none: Option<u32>,
        big: u64,
        negative: i64,
        min: i64,
        yes: bool,
        unit: (),
        letter: char,
        text_guarded: crate::analyze::rows::Text,
        unicode: String,
        last: Option<u64>,
    }

    #[test]
    fn records_equal_the_crate() {
        let r = Every {
            text: "ftp reply 227".into(),
            quoted: "a, \"b\"",
            lines: "one\r\ntwo\nthree\r".into(),
            empty: String::new(),
            small: 0,
            port: Some(65535),
            none: None,
            big: u64::MAX,
            negative: -1_000_000_007,
            min: i64::MIN,
            yes: true,
            unit: (),
            letter: ',',
            text_guarded: "=HYPERLINK()".into(),
            unicode: "grüß … 日本".into(),
            last: None,
        };
        assert_eq!(ours(&r), crate_says(&r));
        assert!(ours(&r).ends_with("日本,\n"), "{}", ours(&r));
        for t in [
            ("", 1u8, None::<u16>),
            ("x", 2, Some(3)),
            (" lead and trail ", 0, Some(0)),
        ] {
            assert_eq!(ours(&t), crate_says(&t), "{t:?}");
        }
    }

    #[test]
    fn what_a_cell_cannot_hold_is_an_error_and_writes_nothing() {
        let mut b = b"kept\n".to_vec();
        assert!(append(&mut b, &(1u8, vec![1, 2])).is_err());
        assert!(append(&mut b, &(1u8, 2.5f64)).is_err());
        assert_eq!(b, b"kept\n");
    }
}
