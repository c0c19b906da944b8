use super::format::{self, KeyRef, ReadOptions, Sink, Writer};
use super::*;

/// Points as a reader gives them: (metric, tags, field, ms, value).
type Point = (String, Vec<(String, String)>, String, i64, Val);

#[derive(Default)]
struct Collect {
    points: Vec<Point>,
    boundaries: Vec<u64>,
}

impl Sink for Collect {
    fn point(&mut self, key: &KeyRef<'_>, timestamp: i64, value: Val) -> anyhow::Result<()> {
        let mut tags: Vec<(String, String)> = key
            .tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tags.sort();
        self.points.push((
            key.metric.to_owned(),
            tags,
            key.field.to_owned(),
            timestamp,
            value,
        ));
        Ok(())
    }

    fn boundary(&mut self, offset: u64) -> anyhow::Result<()> {
        self.boundaries.push(offset);
        Ok(())
    }
}

fn line(metric: &str, field: &str, tags: &[(&str, &str)], points: &[(i64, Val)]) -> Line {
    Line {
        metric: metric.into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        field: field.into(),
        timestamps: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1.clone()).collect(),
    }
}

fn written(format: Format, lines: &[Line]) -> (Vec<u8>, format::Losses) {
    let mut w = Writer::new(format, Vec::new(), 1);
    w.start().unwrap();
    for l in lines {
        w.line(l).unwrap();
    }
    let losses = w.losses;
    (std::mem::take(w.inner_mut()), losses)
}

fn read_back(format: Format, bytes: &[u8]) -> Collect {
    let mut sink = Collect::default();
    let options = options();
    format::read(format, &mut &bytes[..], &options, &mut sink).unwrap();
    sink
}

/// The points of `lines`, as a reader should give them back.
fn expected(lines: &[Line]) -> Vec<Point> {
    lines
        .iter()
        .flat_map(|l| {
            let tags: Vec<(String, String)> =
                l.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            l.timestamps.iter().zip(&l.values).map(move |(t, v)| {
                (
                    l.metric.clone(),
                    tags.clone(),
                    l.field.clone(),
                    *t,
                    v.clone(),
                )
            })
        })
        .collect()
}

/// Reading as the tests do: one 1 MiB buffer, never split in two.
fn options() -> ReadOptions {
    ReadOptions {
        offset: 0,
        csv_header: None,
        influx_unit_ns: 1,
        json_buffer: 1 << 20,
        split_bytes: usize::MAX,
    }
}

#[test]
fn every_format_reads_back_what_it_wrote() {
    let t = 1_700_000_000_000;
    let numbers = vec![
        line(
            "cpu.user",
            "value",
            &[("host", "web1"), ("dc", "a")],
            &[
                (t, Val::Long(3)),
                (t + 10_000, Val::Double(2.0)),
                (t + 20_000, Val::Double(-0.125)),
            ],
        ),
        line(
            "cpu.user",
            "value",
            &[("host", "db2")],
            &[(t + 5, Val::Long(-7))],
        ),
    ];
    let wind = line(
        "wind",
        "direction",
        &[("station", "s1")],
        &[
            (t, Val::Text("north, \"east\"".into())),
            (t + 1, Val::Bool(true)),
        ],
    );
    // Names only the structured formats can hold.
    let odd = line(
        "cpu.user",
        "value",
        &[("host", "web 1"), ("dc", "a=b;c\\d,e")],
        &[(t, Val::Long(1))],
    );
    let mut mixed = numbers.clone();
    mixed.extend([odd, wind.clone()]);
    let mut flat = numbers.clone();
    flat.push(wind);
    for format in [
        Format::OpentsdbJson,
        Format::Csv,
        Format::BaiduJson,
        Format::InfluxLine,
    ] {
        let (bytes, losses) = written(format, &mixed);
        assert_eq!(losses, Default::default(), "{format:?}");
        let back = read_back(format, &bytes);
        let mut want = expected(&mixed);
        if format == Format::OpentsdbJson {
            // OpenTSDB reads a string value as a number when it is one.
            want.iter_mut().for_each(|p| {
                if let Val::Text(s) = &p.4 {
                    p.4 = Val::from_text(s);
                }
            });
        }
        assert_eq!(
            back.points,
            want,
            "{format:?}: {}",
            String::from_utf8_lossy(&bytes)
        );
        // The last record ends the input (a JSON document before its line break).
        let last = back.boundaries.last().copied().unwrap_or_default();
        assert!(
            bytes.len() as u64 - last <= 1,
            "{format:?}: {last} of {}",
            bytes.len()
        );
    }
    for format in [Format::Telnet, Format::VmJsonl] {
        let (bytes, losses) = written(format, &flat);
        // The text point is left out, the boolean is a number, the field
        // becomes part of the metric.
        assert_eq!(losses.skipped_text, 1, "{format:?}");
        assert_eq!(losses.renamed, 2, "{format:?}");
        let back = read_back(format, &bytes);
        let mut want = expected(&numbers);
        want.push((
            "wind.direction".into(),
            vec![("station".into(), "s1".into())],
            "value".into(),
            t + 1,
            Val::Long(1),
        ));
        assert_eq!(
            back.points,
            want,
            "{format:?}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn readers_take_what_other_tools_write() {
    let telnet =
        b"# collected\nput sys.load 1700000000 0.5 host=a\n\nput sys.load 1700000000123 1 host=a\n";
    let got = read_back(Format::Telnet, telnet);
    let ts: Vec<i64> = got.points.iter().map(|p| p.3).collect();
    assert_eq!(ts, [1_700_000_000_000, 1_700_000_000_123]);
    let influx = b"weather,city=x temp=1.5,hum=40i 1700000000000000000\n";
    let got = read_back(Format::InfluxLine, influx);
    let fields: Vec<(&str, &Val)> = got.points.iter().map(|p| (p.2.as_str(), &p.4)).collect();
    assert_eq!(
        fields,
        [("temp", &Val::Double(1.5)), ("hum", &Val::Long(40))]
    );
    assert_eq!(got.points[0].3, 1_700_000_000_000);
    let vm = br#"{"metric":{"__name__":"up","job":"x"},"values":[1,0.5],"timestamps":[10,20]}"#;
    let got = read_back(Format::VmJsonl, vm);
    assert_eq!(got.points.len(), 2);
    assert_eq!(got.points[1].4, Val::Double(0.5));
    let tsdb = br#"[{"metric":"m","timestamp":1700000000,"value":"12","tags":{"k":5}}]"#;
    let got = read_back(Format::OpentsdbJson, tsdb);
    assert_eq!(got.points[0].1, vec![("k".to_owned(), "5".to_owned())]);
    assert_eq!(
        (got.points[0].3, &got.points[0].4),
        (1_700_000_000_000, &Val::Long(12))
    );
}

#[test]
fn bad_records_name_their_line() {
    let options = options();
    let input = b"put m 1 1 k=v\nput m x 1 k=v\n";
    let err = format::read(
        Format::Telnet,
        &mut &input[..],
        &options,
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("line 2"), "{err:#}");
}

#[test]
fn csv_tags_survive_their_separators() {
    let tags = [("a=b", "c;d"), ("e\\", "")];
    let text = format::csv_tags(tags.iter().copied());
    let back = format::parse_csv_tags(&text).unwrap();
    let want: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    assert_eq!(back, want);
    assert!(format::parse_csv_tags("novalue").is_err());
}

#[test]
fn json_documents_cut_anywhere_by_the_buffer_read_whole() {
    let docs =
        b"[{\"metric\":\"m\",\"timestamp\":1700000000123,\"value\":12.5,\"tags\":{\"k\":\"v\"}}]\n\
        {\"metric\":\"m\",\"timestamp\":\"1700000000\",\"value\":-3,\"tags\":{\"k\":7}}\n";
    let options = options();
    for capacity in [1, 3, 7, 50, 4096] {
        let mut input = std::io::BufReader::with_capacity(capacity, &docs[..]);
        let options = ReadOptions {
            json_buffer: capacity,
            ..options.clone()
        };
        let mut sink = Collect::default();
        format::read(Format::OpentsdbJson, &mut input, &options, &mut sink).unwrap();
        let got: Vec<(i64, Val)> = sink.points.iter().map(|p| (p.3, p.4.clone())).collect();
        assert_eq!(
            got,
            [
                (1_700_000_000_123, Val::Double(12.5)),
                (1_700_000_000_000, Val::Long(-3))
            ],
            "{capacity}"
        );
        assert_eq!(sink.points[1].1, vec![("k".to_owned(), "7".to_owned())]);
    }
}

/// Documents parsed in two parts on two threads give what one pass
/// gives: the same points, boundaries and error, whether a document spans
/// the cut (pretty-printed) or not.
#[test]
fn json_documents_split_in_two_read_as_in_one_pass() {
    let one_line: String = (0..40)
        .map(|i| {
            format!(
                "[{{\"metric\":\"m{}\",\"timestamp\":{},\"value\":{i},\"tags\":{{\"k\":\"v{i}\"}}}}]\n",
                i % 3,
                1_700_000_000 + i
            )
        })
        .collect();
    let pretty = one_line.replace(",\"", ",\n  \"");
    let bad = format!("{one_line}[{{\"metric\":\"m\",\"timestamp\":oops}}]\n{one_line}");
    for (name, text) in [("one line", &one_line), ("pretty", &pretty), ("bad", &bad)] {
        let read = |split_bytes: usize, capacity: usize| {
            let options = ReadOptions {
                json_buffer: capacity,
                split_bytes,
                ..options()
            };
            let mut input = std::io::BufReader::with_capacity(capacity, text.as_bytes());
            let mut sink = Collect::default();
            let outcome = format::read(Format::OpentsdbJson, &mut input, &options, &mut sink)
                // The outermost context: serde_json's own line and column
                // count from where a parse started.
                .map_err(|e| e.to_string());
            (outcome, sink.points, sink.boundaries)
        };
        let whole = read(usize::MAX, 1 << 20);
        assert_eq!(whole.0.is_err(), name == "bad", "{name}: {:?}", whole.0);
        // The bad document stops the read after the 40 before it.
        assert_eq!(whole.1.len(), 40, "{name}");
        for capacity in [64, 500, 1 << 20] {
            assert_eq!(read(64, capacity), whole, "{name}, buffer {capacity}");
        }
    }
}

/// A document alone on its line is parsed by sonic-rs, one spread over
/// lines by serde_json: both give the same points, escapes, number edges
/// and the string forms OpenTSDB accepts included.
#[test]
fn json_lines_read_as_documents_spread_over_lines() {
    let docs = [
        r#"{"metric":"m\u00e9\"x","timestamp":1700000000,"value":0.1,"tags":{"k\\n":"v\"w","n":5}}"#,
        r#"[{"metric":"m","timestamp":"1700000001","value":"12","tags":{"f":1.5,"b":true}}]"#,
        r#"{"metric":"m","timestamp":1700000002123,"value":123456789012345678,"tags":{"k":"v"}}"#,
        r#"{"metric":"m","timestamp":1700000003,"value":-0.0,"tags":{"k":"\u4e2d"}}"#,
        r#"{"metric":"m","timestamp":1700000004,"value":1.7976931348623157e308,"tags":{"k":"v"}}"#,
        r#"{"metric":"m","timestamp":1700000005,"value":5e-324,"tags":{"k":"v"}}"#,
        r#"{"metric":"m","timestamp":1700000006,"value":1e-7,"tags":{"k":"v"}}"#,
        r#"{"metric":"m","timestamp":1700000007,"fields":{"a":1,"b":2.5},"tags":{"k":"v"}}"#,
        r#"[{"metric":"a","timestamp":1700000008,"value":1,"tags":{"k":"v"}},{"metric":"b","timestamp":1700000008,"value":-2,"tags":{"k":"v"}}]"#,
    ];
    let read = |text: &str| {
        let options = options();
        let mut sink = Collect::default();
        format::read(
            Format::OpentsdbJson,
            &mut text.as_bytes(),
            &options,
            &mut sink,
        )
        .unwrap();
        sink.points
    };
    let lines = docs.join("\n") + "\n";
    // The same documents with a line break after every comma between
    // members: no line holds a whole document.
    let spread = lines.replace(",\"", ",\n\"");
    let (by_line, by_stream) = (read(&lines), read(&spread));
    assert_eq!(by_line.len(), 11);
    assert_eq!(by_line, by_stream);
    assert_eq!(by_line[0].0, "m\u{e9}\"x");
    assert_eq!(by_line[0].1[0], ("k\\n".to_owned(), "v\"w".to_owned()));
}
