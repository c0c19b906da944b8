//! Response bodies as JSON. serde_json writes a document fragment by
//! fragment (a bracket, a comma, a number), and a `Vec`'s `write_all`
//! copies each through a call to `memmove`: a raw query's rows spent about
//! a tenth of their rendering in those calls. [`write_into`] appends
//! single bytes in place; the bytes written are serde_json's.

use serde::Serialize;

/// Appends `value` as compact JSON to `buf`.
pub fn write_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(Appender(buf), value)
}

/// `value` as compact JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(128);
    write_into(&mut buf, value)?;
    Ok(buf)
}

struct Appender<'a>(&'a mut Vec<u8>);

impl std::io::Write for Appender<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match bytes {
            [byte] => self.0.push(*byte),
            _ => self.0.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_bytes_are_serde_jsons() -> serde_json::Result<()> {
        let doc = json!({
            "metric": "cpu \"usage\"\n",
            "values": [[1_700_000_000_000i64, 12.5], [1_700_000_010_000i64, -0.0], [1, 1e-7]],
            "big": [u64::MAX, i64::MIN, 1e300, 5e-324],
            "tags": {"host": "é\u{1}", "empty": ""},
            "flags": [true, false, null],
        });
        assert_eq!(super::to_vec(&doc)?, serde_json::to_vec(&doc)?);
        let mut buf = b"prefix".to_vec();
        super::write_into(&mut buf, &doc)?;
        assert_eq!(buf.get(6..), Some(serde_json::to_vec(&doc)?.as_slice()));
        Ok(())
    }
}
