//! XEP-0203: Delayed Delivery stamps.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::element::Element;
use crate::ns;

/// Formats a UTC timestamp as XEP-0082 DateTime (RFC 3339, `Z`).
pub fn datetime(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0);
    let utc = utc.unwrap_or(at);
    utc.format(&Rfc3339).unwrap_or_default()
}

/// A `<delay/>` element saying who delayed the stanza and since when.
pub fn delay(from: &str, stamp: OffsetDateTime) -> Element {
    Element::new("delay", ns::DELAY)
        .attr("from", from)
        .attr("stamp", datetime(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stamps_in_utc_without_fraction() {
        let element = delay("example.com", datetime!(2002-09-10 23:08:25.5 UTC));
        assert_eq!(element.get_attr("stamp"), Some("2002-09-10T23:08:25Z"));
    }
}
