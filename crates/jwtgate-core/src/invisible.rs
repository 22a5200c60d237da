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

#[cfg(test)]
mod tests {
    use super::*;

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
