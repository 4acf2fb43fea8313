//! XML names (XML 1.0 §2.3, Namespaces in XML §3): quick-xml does not check them, and a name
//! the parser accepted is forwarded as it is, so an invalid one would reach the recipient as
//! ill-formed XML.

/// True for an `NCName`: a name without a colon.
pub fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

/// True for a `QName`: an `NCName`, or two joined by one colon.
pub fn is_qname(name: &str) -> bool {
    match name.split_once(':') {
        Some((prefix, local)) => is_ncname(prefix) && is_ncname(local),
        None => is_ncname(name),
    }
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_the_xml_specification_allows() {
        assert!(is_qname("message"));
        assert!(is_qname("xml:lang"));
        assert!(is_qname("_a-b.c9"));
        assert!(is_qname("été"));
    }

    #[test]
    fn refuses_what_is_not_a_name() {
        assert!(!is_qname(""));
        assert!(!is_qname("1c"));
        assert!(!is_qname("b&"));
        assert!(!is_qname("a:b:c"));
        assert!(!is_qname(":a"));
        assert!(!is_qname("a:"));
        assert!(!is_ncname("a:b"));
    }
}
