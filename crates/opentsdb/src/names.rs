//! The seed's character set for metric names, tag keys and tag values
//! (spec 3.1): ASCII letters and digits, Han ideographs, and
//! `-_./():,[]=#` plus both apostrophes.

/// Whether `c` may appear in a name.
pub(crate) const fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '_'
                | '.'
                | '/'
                | '('
                | ')'
                | ':'
                | ','
                | '['
                | ']'
                | '='
                | '#'
                | '\''
                | '\u{2018}'
        )
        || is_han(c)
}

const fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x30000..=0x3134F)
}

/// `ASCII_ALLOWED[b]` for every byte below 128; names are checked for each
/// tag of each written point, so this is a table lookup, not a match.
const ASCII_ALLOWED: [bool; 128] = {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = is_allowed(b as u8 as char);
        b += 1;
    }
    table
};

/// The first character not allowed in a name.
pub(crate) fn first_illegal(name: &str) -> Option<char> {
    // Almost every name is plain ASCII: check bytes before decoding chars.
    if name
        .bytes()
        .all(|b| ASCII_ALLOWED.get(b as usize).copied().unwrap_or(false))
    {
        return None;
    }
    name.chars().find(|c| !is_allowed(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_character_set() {
        assert_eq!(first_illegal("温度.传感器(1):[a]=b‘c#d-e_f/g,h'i"), None);
        assert_eq!(first_illegal("华东-1"), None);
        assert_eq!(first_illegal("tempü"), Some('ü'));
        assert_eq!(first_illegal("a，b"), Some('，'));
        assert_eq!(first_illegal("web 01"), Some(' '));
        assert_eq!(first_illegal("sys@cpu"), Some('@'));
        assert_eq!(first_illegal("кот"), Some('к'));
    }
}
