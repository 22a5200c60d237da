//! Whole numbers YAML reads from a spelling other than plain decimal
//! (`0x1F`, `0o17`, `+5`, `1_000`, `007`). The tree holds only the number,
//! so a field that wants text would get its decimal form: `key: 0x1F`
//! became the consumer key `"31"`, the tokens signed with `0x1F` were
//! refused, and `check` said ok (an outside operations audit). Such a
//! value is refused with where it is, to be quoted (the text) or written in
//! decimal (the number). Keys of mappings are text as written already.

use granit_parser::{Event, Parser, ScalarStyle, Tag};

/// Where a node sits: a mapping alternates key and value.
enum Frame {
    Mapping { key_next: bool },
    Sequence,
}

/// The first value of `text` (valid YAML) spelled as a whole number other
/// than in plain decimal, as an error message naming its line and column;
/// how many more there are, if any.
pub(crate) fn first_respelled_number(text: &str) -> Option<String> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut found: Vec<(usize, usize)> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            // The YAML parser proper says what is wrong with the text.
            return None;
        };
        // A node takes a place: a mapping's key, or a value (the next node
        // of a mapping whose key this is not).
        let takes_place = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        let is_key = takes_place
            && match frames.last_mut() {
                Some(Frame::Mapping { key_next }) => std::mem::replace(key_next, !*key_next),
                _ => false,
            };
        match event {
            Event::Scalar(value, ScalarStyle::Plain, _, tag)
                if !is_key && read_as_resolved(tag.as_deref()) && respelled_integer(&value) =>
            {
                found.push((span.start.line(), span.start.col() + 1));
            }
            Event::MappingStart(..) => frames.push(Frame::Mapping { key_next: true }),
            Event::SequenceStart(..) => frames.push(Frame::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
            }
            _ => {}
        }
    }
    let (line, column) = found.first()?;
    let more = match found.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more value so written)".to_owned(),
        n => format!(" (and {n} more values so written)"),
    };
    // Never the value itself: it may be a password that looks like a number.
    Some(format!(
        "line {line} column {column}: this value is a whole number to YAML in a spelling other \
         than plain decimal (0x.., 0o.., 0b.., +.., 1_000, 007), read as that number and not as \
         the text written: quote it (\"...\") to keep the text, or write the number in plain \
         decimal{more}"
    ))
}

/// Whether a plain scalar with this tag is resolved as YAML resolves an
/// untagged one: no tag, or an application's own (`!custom 0x1F` is 31 to
/// the parser too); not `!!str`, `!` (text) or another core tag (`!!int`
/// asks for the number).
fn read_as_resolved(tag: Option<&Tag>) -> bool {
    // The non-specific `!` comes as an empty handle and the suffix `!`.
    let non_specific = |t: &Tag| t.handle().is_empty() && t.suffix() == "!";
    tag.is_none_or(|t| !t.is_yaml_core_schema() && !non_specific(t))
}

/// Whether `s` is a whole number to YAML spelled otherwise than in plain
/// decimal: a sign `+`, a leading zero, a `0x`/`0o`/`0b` radix, or `_`
/// between digits. As the YAML reader has it (a review tried 170 000
/// spellings): a radix or `_` spelling past the 64-bit range, and a
/// leading zero with `_` (`0_1`), stay text, and are not counted.
fn respelled_integer(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(prefix, radix)| Some((unsigned.strip_prefix(prefix)?, *radix)));
    let (digits, radix) = radix.unwrap_or((unsigned, 10));
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c == '_' || c.is_digit(radix));
    if !well_formed {
        return false;
    }
    if radix != 10 || digits.contains('_') {
        if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
            return false;
        }
        let negative = s.starts_with('-');
        let limit = if negative {
            u128::from(i64::MIN.unsigned_abs())
        } else {
            u128::from(u64::MAX)
        };
        let in_range =
            u128::from_str_radix(&digits.replace('_', ""), radix).is_ok_and(|n| n <= limit);
        if !in_range {
            return false;
        }
    }
    let plain_decimal = radix == 10
        && !s.starts_with('+')
        && !digits.contains('_')
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    !plain_decimal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_numbers_spelled_otherwise_than_in_decimal_are_respelled() {
        for s in [
            "0x1F",
            "0X1f",
            "0o17",
            "0b101",
            "+5",
            "-0",
            "007",
            "1_000",
            "-0x10",
            "0xFFFFFFFFFFFFFFFF",
            "-0x8000000000000000",
        ] {
            assert!(respelled_integer(s), "{s}");
        }
        for s in [
            "0",
            "31",
            "-7",
            "12345678901234567890123",
            "0x",
            "1__0",
            "_1",
            "1_",
            "0x1G",
            "1e3",
            "1.5",
            "user123",
            "0xdeadbeefz",
            // Kept as text by the YAML reader: past 64 bits, or `0` then `_`.
            "0x10000000000000000",
            "-0x8000000000000001",
            "0_1",
            "+0_7",
            "0x6b3a9f0e4c2d1b8a7f6e5d4c3b2a19080706050403020100ffeeddccbbaa9988",
            "1_000_000_000_000_000_000_000",
        ] {
            assert!(!respelled_integer(s), "{s}");
        }
    }

    #[test]
    fn a_respelled_value_is_found_with_its_place_but_not_a_key_or_quoted_text() {
        let text = "consumers:\n  - username: u\n    jwt: { key: 0x1F, secret: s }\n";
        assert_eq!(
            first_respelled_number(text).as_deref(),
            Some(
                "line 3 column 17: this value is a whole number to YAML in a spelling other than \
                 plain decimal (0x.., 0o.., 0b.., +.., 1_000, 007), read as that number and not as \
                 the text written: quote it (\"...\") to keep the text, or write the number in \
                 plain decimal"
            )
        );
        assert_eq!(
            first_respelled_number("key: \"0x1F\"\n0x10: 31\nlist: [1, 2, '007']\nport: 6379\n"),
            None
        );
        // A tag of the application's own is resolved as none is; `!!str`
        // and `!` keep the text, `!!int` asks for the number.
        assert!(first_respelled_number("v: !custom 0x1F\n").is_some());
        for text in ["v: !!str 0x1F\n", "v: ! 0x1F\n", "v: !!int 0x1F\n"] {
            assert_eq!(first_respelled_number(text), None, "{text}");
        }
        let two = first_respelled_number("a: +5\nb:\n  - 1_000\n").expect("found");
        assert!(
            two.starts_with("line 1 column 4: this value")
                && two.ends_with("(and 1 more value so written)"),
            "{two}"
        );
    }
}
