//! XEP-0203: Delayed Delivery stamps, written and read as XEP-0082 DateTimes.

use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::element::Element;
use crate::ns;

/// Why a timestamp from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DateTimeError {
    /// The text is not an XEP-0082 DateTime.
    #[error("not an XEP-0082 DateTime: {0}")]
    Malformed(String),
    /// A `<delay/>` element has no `stamp`.
    #[error("delay without stamp")]
    MissingStamp,
}

/// Formats a UTC timestamp as XEP-0082 DateTime (RFC 3339, `Z`).
pub fn datetime(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0);
    let utc = utc.unwrap_or(at);
    utc.format(&Rfc3339).unwrap_or_default()
}

/// Reads an XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`), converted to UTC.
pub fn parse_datetime(text: &str) -> Result<OffsetDateTime, DateTimeError> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map(|at| at.to_offset(time::UtcOffset::UTC))
        .map_err(|_| DateTimeError::Malformed(text.to_owned()))
}

/// A `<delay/>` element saying who delayed the stanza and since when.
pub fn delay(from: &str, stamp: OffsetDateTime) -> Element {
    Element::new("delay", ns::DELAY)
        .attr("from", from)
        .attr("stamp", datetime(stamp))
}

/// A `<delay/>` element with only a stamp, as inside XEP-0297 forwarded stanzas.
pub fn delay_stamp(stamp: OffsetDateTime) -> Element {
    Element::new("delay", ns::DELAY).attr("stamp", datetime(stamp))
}

/// The stamp of a `<delay/>` element.
pub fn stamp_of(delay: &Element) -> Result<OffsetDateTime, DateTimeError> {
    parse_datetime(delay.get_attr("stamp").ok_or(DateTimeError::MissingStamp)?)
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

    #[test]
    fn reads_datetimes_with_fraction_and_offset_as_utc() {
        assert_eq!(
            parse_datetime("1969-07-21T02:56:15Z"),
            Ok(datetime!(1969-07-21 02:56:15 UTC))
        );
        assert_eq!(
            parse_datetime("1969-07-20T21:56:15.123-05:00"),
            Ok(datetime!(1969-07-21 02:56:15.123 UTC))
        );
    }

    #[test]
    fn refuses_dates_without_time_or_zone() {
        assert!(parse_datetime("1776-07-04").is_err());
        assert!(parse_datetime("2010-07-10T23:08:25").is_err());
        let no_stamp = Element::new("delay", ns::DELAY);
        assert_eq!(stamp_of(&no_stamp), Err(DateTimeError::MissingStamp));
    }

    #[test]
    fn a_written_stamp_reads_back() {
        let at = datetime!(2010-07-10 23:08:25 UTC);
        assert_eq!(stamp_of(&delay_stamp(at)), Ok(at));
    }
}
