//! XEP-0313 §4.2–§4.3: the result messages and the `<fin/>` that answer a query.

use super::{MamError, MamNs};
use crate::data_form::parse_bool;
use crate::element::Element;
use crate::forward::{ForwardError, Forwarded};
use crate::ns;
use crate::rsm::RsmAnswer;

/// One archived message sent back for a query, inside a `<message/>` to the querier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MamResult {
    /// The namespace of the query.
    pub ns: MamNs,
    /// The query's `queryid`, if it had one.
    pub queryid: Option<String>,
    /// The archive id of the message.
    pub id: String,
    /// The message as archived, with the time it was archived.
    pub forwarded: Forwarded,
}

impl MamResult {
    /// Reads a `<result/>` element.
    pub fn parse(result: &Element) -> Result<MamResult, MamError> {
        let version = MamNs::of(result.ns()).ok_or(MamError::NotMam)?;
        if result.name() != "result" {
            return Err(MamError::NotMam);
        }
        let forwarded = result
            .get_child("forwarded", ns::FORWARD)
            .ok_or(ForwardError::NotForwarded)?;
        Ok(MamResult {
            ns: version,
            queryid: result.get_attr("queryid").map(str::to_owned),
            id: result
                .get_attr("id")
                .ok_or(MamError::BadAttribute("id"))?
                .to_owned(),
            forwarded: Forwarded::parse(forwarded)?,
        })
    }

    /// The `<result/>` element.
    pub fn to_element(&self) -> Element {
        Element::new("result", self.ns.as_str())
            .attr_opt("queryid", self.queryid.clone())
            .attr("id", self.id.clone())
            .child(self.forwarded.to_element())
    }

    /// The `<message/>` from the archive to the querying resource that carries the result.
    pub fn to_message(&self, from: &str, to: &str) -> Element {
        Element::new("message", ns::CLIENT)
            .attr("from", from)
            .attr("to", to)
            .child(self.to_element())
    }
}

/// The `<fin/>` that closes a query: whether the page was the last one, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fin {
    /// The namespace of the query.
    pub ns: MamNs,
    /// No more results beyond this page in the direction of paging.
    pub complete: bool,
    /// False when the results may still change (an unconverged store).
    pub stable: bool,
    /// The page's first and last ids and the count.
    pub rsm: RsmAnswer,
}

impl Fin {
    /// Reads a `<fin/>` element.
    pub fn parse(fin: &Element) -> Result<Fin, MamError> {
        let version = MamNs::of(fin.ns()).ok_or(MamError::NotMam)?;
        if fin.name() != "fin" {
            return Err(MamError::NotMam);
        }
        let flag = |name: &'static str, default: bool| match fin.get_attr(name) {
            None => Ok(default),
            Some(value) => parse_bool(value).ok_or(MamError::BadAttribute(name)),
        };
        Ok(Fin {
            ns: version,
            complete: flag("complete", false)?,
            stable: flag("stable", true)?,
            rsm: match fin.get_child("set", ns::RSM) {
                Some(set) => RsmAnswer::parse(set)?,
                None => RsmAnswer::default(),
            },
        })
    }

    /// The `<fin/>` element; `complete` and `stable` are written only when not the default.
    pub fn to_element(&self) -> Element {
        Element::new("fin", self.ns.as_str())
            .attr_opt("complete", self.complete.then_some("true"))
            .attr_opt("stable", (!self.stable).then_some("false"))
            .child(self.rsm.to_element())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const RESULT: &str = "<result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>\
        <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
        <message xmlns='jabber:client' to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat'>\
        <body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>\
        </message></forwarded></result>";

    #[test]
    fn the_result_example_reads_ids_stamp_and_message() {
        let result = MamResult::parse(&Element::parse(RESULT).expect("xml")).expect("result");
        assert_eq!(result.queryid.as_deref(), Some("f27"));
        assert_eq!(result.id, "28482-98726-73623");
        assert_eq!(
            result.forwarded.stamp,
            Some(datetime!(2010-07-10 23:08:25 UTC))
        );
        assert_eq!(MamResult::parse(&result.to_element()), Ok(result));
    }

    #[test]
    fn a_result_message_is_addressed_to_the_querier() {
        let result = MamResult {
            ns: MamNs::V1,
            queryid: None,
            id: "a1".to_owned(),
            forwarded: Forwarded::stamped(
                Element::new("message", ns::CLIENT),
                datetime!(2010-07-10 23:08:25 UTC),
            ),
        };
        let message = result.to_message("juliet@capulet.lit", "juliet@capulet.lit/chamber");
        assert_eq!(message.get_attr("to"), Some("juliet@capulet.lit/chamber"));
        let inner = message.get_child("result", ns::MAM_1).expect("result");
        assert_eq!(inner.get_attr("queryid"), None);
        assert_eq!(MamResult::parse(inner), Ok(result));
    }

    #[test]
    fn a_result_without_id_or_forwarded_is_an_error() {
        let no_id = Element::parse(&RESULT.replace(" id='28482-98726-73623'", "")).expect("xml");
        assert_eq!(MamResult::parse(&no_id), Err(MamError::BadAttribute("id")));
        let empty = Element::new("result", ns::MAM).attr("id", "x");
        assert_eq!(
            MamResult::parse(&empty),
            Err(MamError::Forward(ForwardError::NotForwarded))
        );
    }

    #[test]
    fn the_complete_fin_example_reads_back() {
        let fin = Fin::parse(
            &Element::parse(
                "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'>\
                 <first index='0'>23452-4534-1</first><last>390-2342-22</last><count>16</count></set></fin>",
            )
            .expect("xml"),
        )
        .expect("fin");
        assert!(fin.complete);
        assert!(fin.stable);
        assert_eq!(fin.rsm.first_index, Some(0));
        assert_eq!(fin.rsm.count, Some(16));
        assert_eq!(Fin::parse(&fin.to_element()), Ok(fin));
    }

    #[test]
    fn an_incomplete_unstable_fin_says_so_and_a_complete_stable_one_is_terse() {
        let unstable = Fin {
            ns: MamNs::V2,
            complete: false,
            stable: false,
            rsm: RsmAnswer::default(),
        };
        let element = unstable.to_element();
        assert_eq!(element.get_attr("complete"), None);
        assert_eq!(element.get_attr("stable"), Some("false"));
        assert_eq!(Fin::parse(&element), Ok(unstable));
        let bad = Element::new("fin", ns::MAM).attr("complete", "yes");
        assert_eq!(Fin::parse(&bad), Err(MamError::BadAttribute("complete")));
    }
}
