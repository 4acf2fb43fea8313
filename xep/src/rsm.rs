//! XEP-0059: Result Set Management (1.0)
//!
//! The `<set/>` a requester sends to page through a result, and the `<set/>` answered with
//! the page. Numbers are `u32`; a `max` larger than that is read as `u32::MAX`, since the
//! responder caps it anyway (§2.1).

use thiserror::Error;

use crate::element::Element;
use crate::ns;

/// Why a `<set/>` was refused (`bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RsmError {
    /// The element is not `<set xmlns='http://jabber.org/protocol/rsm'/>`.
    #[error("not a result set element")]
    NotRsm,
    /// A number is negative or not a number.
    #[error("{0} is not a non-negative integer")]
    BadNumber(&'static str),
}

/// Where a backwards page ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// `<before/>` empty: the last page of the result.
    LastPage,
    /// `<before>id</before>`: the page just before this item.
    Item(String),
}

/// A requester's `<set/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RsmRequest {
    /// The most items wanted; 0 asks only for the count.
    pub max: Option<u32>,
    /// Page forwards from just after this item.
    pub after: Option<String>,
    /// Page backwards.
    pub before: Option<Before>,
    /// Start at this position of the full result.
    pub index: Option<u32>,
}

impl RsmRequest {
    /// Reads a `<set/>` request.
    pub fn parse(set: &Element) -> Result<RsmRequest, RsmError> {
        if !set.is("set", ns::RSM) {
            return Err(RsmError::NotRsm);
        }
        let before = set.child_text("before", ns::RSM).map(|id| {
            if id.is_empty() {
                Before::LastPage
            } else {
                Before::Item(id)
            }
        });
        Ok(RsmRequest {
            max: number_child(set, "max")?,
            after: set.child_text("after", ns::RSM),
            before,
            index: number_child(set, "index")?,
        })
    }

    /// The page size to use: `max` if given, else `default`, never more than `cap`.
    pub fn page_size(&self, default: u32, cap: u32) -> u32 {
        self.max.unwrap_or(default).min(cap)
    }

    /// The `<set/>` element, for requests the server itself sends.
    pub fn to_element(&self) -> Element {
        let mut set = Element::new("set", ns::RSM);
        if let Some(max) = self.max {
            set.append_child(Element::new("max", ns::RSM).text(max.to_string()));
        }
        if let Some(after) = &self.after {
            set.append_child(Element::new("after", ns::RSM).text(after.clone()));
        }
        match &self.before {
            Some(Before::LastPage) => set.append_child(Element::new("before", ns::RSM)),
            Some(Before::Item(id)) => {
                set.append_child(Element::new("before", ns::RSM).text(id.clone()))
            }
            None => {}
        }
        if let Some(index) = self.index {
            set.append_child(Element::new("index", ns::RSM).text(index.to_string()));
        }
        set
    }
}

/// The responder's `<set/>` describing the page it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RsmAnswer {
    /// The id of the first item of the page; absent for an empty page.
    pub first: Option<String>,
    /// The position of the first item in the full result.
    pub first_index: Option<u32>,
    /// The id of the last item of the page; absent for an empty page.
    pub last: Option<String>,
    /// The number of items in the full result.
    pub count: Option<u32>,
}

impl RsmAnswer {
    /// Reads a `<set/>` answer.
    pub fn parse(set: &Element) -> Result<RsmAnswer, RsmError> {
        if !set.is("set", ns::RSM) {
            return Err(RsmError::NotRsm);
        }
        let first = set.get_child("first", ns::RSM);
        Ok(RsmAnswer {
            first: first.map(Element::text_content),
            first_index: first
                .and_then(|f| f.get_attr("index"))
                .map(|index| parse_number(index, "index"))
                .transpose()?,
            last: set.child_text("last", ns::RSM),
            count: number_child(set, "count")?,
        })
    }

    /// The `<set/>` element: first (with index), last, count, as in the XEP's examples.
    pub fn to_element(&self) -> Element {
        let mut set = Element::new("set", ns::RSM);
        if let Some(first) = &self.first {
            set.append_child(
                Element::new("first", ns::RSM)
                    .attr_opt("index", self.first_index.map(|i| i.to_string()))
                    .text(first.clone()),
            );
        }
        if let Some(last) = &self.last {
            set.append_child(Element::new("last", ns::RSM).text(last.clone()));
        }
        if let Some(count) = self.count {
            set.append_child(Element::new("count", ns::RSM).text(count.to_string()));
        }
        set
    }
}

fn number_child(set: &Element, name: &'static str) -> Result<Option<u32>, RsmError> {
    set.child_text(name, ns::RSM)
        .map(|text| parse_number(&text, name))
        .transpose()
}

/// Reads a non-negative XML Schema integer (digits, optionally after `+`), saturating at
/// `u32::MAX` rather than refusing a large one.
fn parse_number(text: &str, name: &'static str) -> Result<u32, RsmError> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RsmError::BadNumber(name));
    }
    Ok(digits.parse().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(xml: &str) -> Result<RsmRequest, RsmError> {
        RsmRequest::parse(&Element::parse(xml).expect("xml"))
    }

    #[test]
    fn the_second_page_request_reads_max_and_after() {
        let set = request(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>peterpan@neverland.lit</after></set>",
        )
        .expect("set");
        assert_eq!(set.max, Some(10));
        assert_eq!(set.after.as_deref(), Some("peterpan@neverland.lit"));
        assert_eq!(RsmRequest::parse(&set.to_element()), Ok(set));
    }

    #[test]
    fn an_empty_before_asks_for_the_last_page() {
        let last =
            request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>")
                .expect("set");
        assert_eq!(last.before, Some(Before::LastPage));
        assert_eq!(RsmRequest::parse(&last.to_element()), Ok(last));
        let previous = request(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>peter@pixyland.org</before></set>",
        )
        .expect("set");
        assert_eq!(
            previous.before,
            Some(Before::Item("peter@pixyland.org".to_owned()))
        );
    }

    #[test]
    fn a_page_by_index_reads_the_index() {
        let set = request(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><index>371</index></set>",
        )
        .expect("set");
        assert_eq!(set.index, Some(371));
    }

    #[test]
    fn a_huge_max_saturates_and_the_page_size_is_capped() {
        let set = request(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>99999999999999999999999</max></set>",
        )
        .expect("set");
        assert_eq!(set.max, Some(u32::MAX));
        assert_eq!(set.page_size(20, 250), 250);
        assert_eq!(RsmRequest::default().page_size(20, 250), 20);
        let signed = request("<set xmlns='http://jabber.org/protocol/rsm'><max>+5</max></set>");
        assert_eq!(signed.map(|set| set.max), Ok(Some(5)));
    }

    #[test]
    fn negative_or_non_numeric_numbers_are_errors() {
        for bad in ["-1", "ten", "", "+", "1.5"] {
            let xml = format!("<set xmlns='http://jabber.org/protocol/rsm'><max>{bad}</max></set>");
            assert_eq!(request(&xml), Err(RsmError::BadNumber("max")), "{bad}");
        }
        assert_eq!(
            request("<set xmlns='http://jabber.org/protocol/rsm'><index>x</index></set>"),
            Err(RsmError::BadNumber("index"))
        );
        assert_eq!(request("<set xmlns='urn:other'/>"), Err(RsmError::NotRsm));
    }

    #[test]
    fn the_page_at_an_index_answer_writes_first_with_index() {
        let answer = RsmAnswer {
            first: Some("peter@pixyland.org".to_owned()),
            first_index: Some(371),
            last: Some("peter@rabbit.lit".to_owned()),
            count: Some(800),
        };
        assert_eq!(
            answer.to_element().to_xml(),
            "<set xmlns='http://jabber.org/protocol/rsm'><first index='371'>peter@pixyland.org</first>\
             <last>peter@rabbit.lit</last><count>800</count></set>"
        );
        assert_eq!(RsmAnswer::parse(&answer.to_element()), Ok(answer));
    }

    #[test]
    fn an_empty_page_answer_has_only_the_count() {
        let empty = RsmAnswer {
            count: Some(790),
            ..RsmAnswer::default()
        };
        assert_eq!(
            empty.to_element().to_xml(),
            "<set xmlns='http://jabber.org/protocol/rsm'><count>790</count></set>"
        );
    }
}
