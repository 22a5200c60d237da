//! Characters that show as nothing, or as an ordinary space, or that
//! reorder the text around them: what a config name is warned about for
//! (`jwtgate check`), and what a JSON log line escapes, where a terminal or
//! a log viewer would otherwise show a line other than the one written.

/// Unicode's format characters (Cf) in common use, the fillers that show
/// as blanks, and whitespace other than the ASCII space.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
        || (c != ' ' && c.is_whitespace())
}

/// `text` as a log line may carry it: control characters and invisible
/// ones written as escapes (`\n`, `\u{202e}`), so that a name an etcd
/// writer or an admin chose cannot start a line of its own, or hide or
/// reorder what follows, in a message that quotes it.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_invisible(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_holds_no_line_break_nor_invisible_character() {
        assert_eq!(escaped("routes/a b: ok"), "routes/a b: ok");
        assert!(matches!(escaped("é 日"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            escaped("f\n2026 INFO forged\r\u{202e}x\u{200b}\u{1b}[31m"),
            "f\\n2026 INFO forged\\r\\u{202e}x\\u{200b}\\u{1b}[31m"
        );
    }

    #[test]
    fn invisible_characters_are_told_from_visible_ones() {
        for c in [
            '\u{202E}',
            '\u{200B}',
            '\u{2028}',
            '\u{A0}',
            '\u{FEFF}',
            '\u{E0041}',
            '\t',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in [' ', 'a', 'é', '日', '😀', '\u{301}'] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }
}
