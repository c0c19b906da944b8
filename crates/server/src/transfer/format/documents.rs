//! Streams of JSON documents (OpenTSDB and Baidu JSON), parsed from memory
//! a buffer at a time: serde_json reads a slice several times faster than
//! a reader, and a buffer's two parts are parsed on two threads when the
//! second starts where a document does (files with one document per
//! line), so parsing is not the whole import's bottleneck.

use super::read::{ReadOptions, baidu_document};
use super::{Sink, tsdb_json};
use crate::transfer::Format;
use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;
use std::io::BufRead;

pub(super) fn read_documents(
    format: Format,
    input: &mut dyn BufRead,
    options: &ReadOptions,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    // The file offset of buf[0].
    let mut base = options.offset;
    let mut n = 0u64;
    // Whether the last pass found no complete document: read on then,
    // whatever the buffer holds (a document larger than the buffer grows
    // it).
    let mut stalled = false;
    loop {
        let mut eof = false;
        while !eof && (stalled || buf.len() < options.json_buffer) {
            let chunk = input.fill_buf()?;
            eof = chunk.is_empty();
            buf.extend_from_slice(chunk);
            let len = chunk.len();
            input.consume(len);
            stalled = false;
        }
        // Up to the last line break only (unless the input ended): a cut
        // there cannot fall inside a number or string, so an incomplete
        // document shows as an end-of-input error, never as a bad one.
        let limit = if eof {
            buf.len()
        } else {
            buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
        };
        let slice = buf.get(..limit).unwrap_or_default();
        let mut pass = Pass {
            base,
            eof,
            split_bytes: options.split_bytes,
            n: &mut n,
            sink: &mut *sink,
        };
        let consumed = match format {
            Format::BaiduJson => pass.read(slice, |doc: Value, sink| baidu_document(&doc, sink))?,
            _ => pass.read(slice, tsdb_json::write_document)?,
        };
        stalled = consumed == 0;
        buf.drain(..consumed);
        base += consumed as u64;
        if eof {
            return Ok(());
        }
    }
}

/// One pass over the complete documents of a buffer.
struct Pass<'s> {
    /// The file offset of the buffer's first byte.
    base: u64,
    /// Whether the input ends with this buffer.
    eof: bool,
    /// Slices at least this long are parsed in two parts.
    split_bytes: usize,
    /// Documents read so far.
    n: &'s mut u64,
    sink: &'s mut dyn Sink,
}

/// What the parser made of a slice.
struct Parsed<T> {
    /// Each document with the offset of its end in the slice.
    docs: Vec<(T, usize)>,
    /// The end of the last complete document (the slice's length when
    /// only whitespace follows it).
    consumed: usize,
    /// Why parsing stopped early: `None` for an incomplete last document
    /// (more input follows), else a bad document and where it starts.
    error: Option<(serde_json::Error, usize)>,
}

/// Parses the documents of `slice`: each line that holds exactly one
/// document through sonic-rs (several times faster than serde_json on
/// the files `sundial export` writes, one series per line), the rest from the first other line
/// on through serde_json's stream, which also finds a document's end and
/// names a bad one's error as before.
fn parse<'de, T: Deserialize<'de>>(slice: &'de [u8], eof: bool) -> Parsed<T> {
    let mut parsed = Parsed {
        docs: Vec::new(),
        consumed: 0,
        error: None,
    };
    // Where the next line starts.
    let mut from = 0;
    loop {
        let rest = slice.get(from..).unwrap_or_default();
        if rest.iter().all(u8::is_ascii_whitespace) {
            parsed.consumed = slice.len();
            return parsed;
        }
        let line_len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = rest.get(..line_len).unwrap_or_default();
        let blank_end = line
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let text_len = line_len - blank_end;
        if text_len > 0 {
            let Ok(doc) = sonic_rs::from_slice::<T>(line) else {
                break;
            };
            parsed.consumed = from + text_len;
            parsed.docs.push((doc, parsed.consumed));
        }
        from += line_len;
    }
    let tail = stream_parse(slice.get(from..).unwrap_or_default(), eof);
    let shift = |at: usize| from + at;
    parsed
        .docs
        .extend(tail.docs.into_iter().map(|(doc, end)| (doc, shift(end))));
    // Without a document in the tail, what the lines consumed stands.
    if tail.consumed > 0 {
        parsed.consumed = shift(tail.consumed);
    }
    parsed.error = tail.error.map(|(e, at)| (e, shift(at)));
    parsed
}

/// serde_json's stream over `slice`: any layout of documents.
fn stream_parse<'de, T: Deserialize<'de>>(slice: &'de [u8], eof: bool) -> Parsed<T> {
    let mut stream = serde_json::Deserializer::from_slice(slice).into_iter::<T>();
    let mut parsed = Parsed {
        docs: Vec::new(),
        consumed: 0,
        error: None,
    };
    loop {
        match stream.next() {
            None => {
                parsed.consumed = slice.len();
                return parsed;
            }
            Some(Ok(doc)) => {
                parsed.consumed = stream.byte_offset();
                parsed.docs.push((doc, parsed.consumed));
            }
            Some(Err(e)) if e.is_eof() && !eof => return parsed,
            Some(Err(e)) => {
                let rest = slice.get(parsed.consumed..).unwrap_or_default();
                let blank = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
                parsed.error = Some((e, parsed.consumed + blank));
                return parsed;
            }
        }
    }
}

impl Pass<'_> {
    /// Reads each complete document of `slice` as a `T` (parsed once, in
    /// place) and hands it to `write`, in order; the bytes consumed. An
    /// incomplete last document is left for the next buffer.
    fn read<'de, T: Deserialize<'de> + Send>(
        &mut self,
        slice: &'de [u8],
        write: impl Fn(T, &mut dyn Sink) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let Some(mid) = self.split_line_end(slice) else {
            return self.apply(parse(slice, self.eof), 0, &write);
        };
        let (first, second) = slice.split_at(mid);
        let eof = self.eof;
        std::thread::scope(|s| {
            let second = s.spawn(move || parse::<T>(second, eof));
            let first = parse::<T>(first, false);
            let whole = first.consumed == mid && first.error.is_none();
            // While the other thread still parses.
            let consumed = self.apply(first, 0, &write)?;
            match second.join() {
                Ok(second) if whole => Ok(mid + self.apply(second, mid, &write)?),
                // A document spans the cut (or the thread died): the rest
                // again, in one piece.
                _ => {
                    let rest = slice.get(consumed..).unwrap_or_default();
                    Ok(consumed + self.apply(parse(rest, self.eof), consumed, &write)?)
                }
            }
        })
    }

    /// Where to cut `slice` in two: just after a line break at two fifths
    /// (this thread also hands its part to the sink while the other
    /// parses), when it is long enough to be worth a thread.
    fn split_line_end(&self, slice: &[u8]) -> Option<usize> {
        if slice.len() < self.split_bytes.max(2) {
            return None;
        }
        let at = slice.len() * 2 / 5;
        let after = slice.get(at..)?.iter().position(|b| *b == b'\n')?;
        Some(at + after + 1).filter(|&cut| cut < slice.len())
    }

    /// Hands parsed documents to the sink; the bytes consumed. `offset`
    /// is where the parsed part starts in the buffer.
    fn apply<T>(
        &mut self,
        parsed: Parsed<T>,
        offset: usize,
        write: &impl Fn(T, &mut dyn Sink) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        for (doc, end) in parsed.docs {
            *self.n += 1;
            let at = self.base + (offset + end) as u64;
            write(doc, &mut *self.sink)
                .with_context(|| format!("document {} (ending at byte {at})", self.n))?;
            self.sink.boundary(at)?;
        }
        if let Some((e, start)) = parsed.error {
            let at = self.base + (offset + start) as u64;
            return Err(e).with_context(|| format!("document {} (from byte {at})", *self.n + 1));
        }
        Ok(parsed.consumed)
    }
}
