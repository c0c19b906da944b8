//! What the adapters' fuzz entry points share (`fuzz/` at the repository
//! root runs them under libFuzzer).

/// The first line (lossy UTF-8, without `\r`) and the bytes after it:
/// targets take a request's query line, then its body.
pub fn split_line(data: &[u8]) -> (String, &[u8]) {
    let (line, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    (String::from_utf8_lossy(line).into_owned(), rest)
}
