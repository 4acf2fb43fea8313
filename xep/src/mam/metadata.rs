//! XEP-0313 §6.1 archive metadata, and the query form offered to clients (§4.1.5).

use time::OffsetDateTime;

use super::{MamError, MamNs};
use crate::delay::{datetime, parse_datetime};
use crate::element::Element;
use crate::ns;

/// XEP-0122 validation namespace, needed to mark the `ids` field as open.
const XDATA_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";

/// The first or last message of an archive (§6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBound {
    /// Its archive id.
    pub id: String,
    /// When it was archived.
    pub timestamp: OffsetDateTime,
}

/// The `<metadata/>` answer: the first and last message, or nothing for an empty archive.
pub fn metadata(bounds: Option<(&ArchiveBound, &ArchiveBound)>) -> Element {
    let mut metadata = Element::new("metadata", ns::MAM);
    if let Some((start, end)) = bounds {
        for (name, bound) in [("start", start), ("end", end)] {
            metadata.append_child(
                Element::new(name, ns::MAM)
                    .attr("id", bound.id.clone())
                    .attr("timestamp", datetime(bound.timestamp)),
            );
        }
    }
    metadata
}

/// Reads a `<metadata/>` answer: `None` for an empty archive.
pub fn parse_metadata(
    metadata: &Element,
) -> Result<Option<(ArchiveBound, ArchiveBound)>, MamError> {
    if !metadata.is("metadata", ns::MAM) {
        return Err(MamError::NotMam);
    }
    let bound = |name: &str| -> Result<Option<ArchiveBound>, MamError> {
        let Some(element) = metadata.get_child(name, ns::MAM) else {
            return Ok(None);
        };
        let id = element.get_attr("id").ok_or(MamError::BadAttribute("id"))?;
        let timestamp = element
            .get_attr("timestamp")
            .and_then(|t| parse_datetime(t).ok())
            .ok_or(MamError::BadAttribute("timestamp"))?;
        Ok(Some(ArchiveBound {
            id: id.to_owned(),
            timestamp,
        }))
    };
    match (bound("start")?, bound("end")?) {
        (Some(start), Some(end)) => Ok(Some((start, end))),
        (None, None) => Ok(None),
        _ => Err(MamError::BadAttribute("start/end")),
    }
}

/// The answer to a query-form request (§4.1.5): the form with every supported field.
pub fn query_form(version: MamNs) -> Element {
    let field = |var: &str, kind: &str| {
        Element::new("field", ns::DATA_FORMS)
            .attr("type", kind)
            .attr("var", var)
    };
    let form_type = field("FORM_TYPE", "hidden")
        .child(Element::new("value", ns::DATA_FORMS).text(version.as_str()));
    let ids = field("ids", "list-multi").child(
        Element::new("validate", XDATA_VALIDATE)
            .attr("datatype", "xs:string")
            .child(Element::new("open", XDATA_VALIDATE)),
    );
    let form = Element::new("x", ns::DATA_FORMS)
        .attr("type", "form")
        .child(form_type)
        .child(field("with", "jid-single"))
        .child(field("start", "text-single"))
        .child(field("end", "text-single"))
        .child(field("before-id", "text-single"))
        .child(field("after-id", "text-single"))
        .child(ids);
    Element::new("query", version.as_str()).child(form)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_form::DataForm;
    use time::macros::datetime;

    #[test]
    fn the_metadata_example_reads_and_writes_back() {
        let element = Element::parse(
            "<metadata xmlns='urn:xmpp:mam:2'>\
             <start id='YWxwaGEg' timestamp='2008-08-22T21:09:04Z'/>\
             <end id='b21lZ2Eg' timestamp='2020-04-20T14:34:21Z'/></metadata>",
        )
        .expect("xml");
        let (start, end) = parse_metadata(&element).expect("metadata").expect("bounds");
        assert_eq!(start.id, "YWxwaGEg");
        assert_eq!(end.timestamp, datetime!(2020-04-20 14:34:21 UTC));
        assert_eq!(metadata(Some((&start, &end))), element);
    }

    #[test]
    fn an_empty_archive_has_empty_metadata() {
        let empty = metadata(None);
        assert_eq!(empty.to_xml(), "<metadata xmlns='urn:xmpp:mam:2'/>");
        assert_eq!(parse_metadata(&empty), Ok(None));
    }

    #[test]
    fn metadata_with_one_bound_or_a_bad_timestamp_is_an_error() {
        let half = Element::parse(
            "<metadata xmlns='urn:xmpp:mam:2'><start id='a' timestamp='2008-08-22T21:09:04Z'/></metadata>",
        )
        .expect("xml");
        assert!(parse_metadata(&half).is_err());
        let bad = Element::parse(
            "<metadata xmlns='urn:xmpp:mam:2'><start id='a' timestamp='soon'/><end id='b' timestamp='soon'/></metadata>",
        )
        .expect("xml");
        assert_eq!(
            parse_metadata(&bad),
            Err(MamError::BadAttribute("timestamp"))
        );
    }

    #[test]
    fn the_query_form_offers_every_supported_field_and_an_open_ids_list() {
        let query = query_form(MamNs::V2);
        let x = query.get_child("x", ns::DATA_FORMS).expect("form");
        let form = DataForm::parse(x).expect("form");
        assert_eq!(form.form_type.as_deref(), Some(ns::MAM));
        let vars: Vec<&str> = form.fields.iter().map(|f| f.var.as_str()).collect();
        assert_eq!(
            vars,
            ["with", "start", "end", "before-id", "after-id", "ids"]
        );
        let ids = x.children().last().expect("ids field");
        assert!(ids
            .get_child("validate", XDATA_VALIDATE)
            .is_some_and(|v| v.has_child("open", XDATA_VALIDATE)));
    }
}
