//! XEP-0313 §4: the archive query and its filter form.

use jid::Jid;
use time::OffsetDateTime;

use super::{MamError, MamNs};
use crate::address::parse_address;
use crate::data_form::{DataForm, Field};
use crate::delay::{datetime, parse_datetime};
use crate::element::Element;
use crate::ns;
use crate::rsm::RsmRequest;

/// The form fields this crate reads; any other field is refused (§4.1.5).
const FIELDS: [&str; 6] = ["with", "start", "end", "before-id", "after-id", "ids"];

/// A client's archive query: which messages, and which page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MamQuery {
    /// The namespace the query came in.
    pub ns: MamNs,
    /// The client's tag, repeated on every result.
    pub queryid: Option<String>,
    /// A pubsub node (XEP-0442), for archives of pubsub nodes.
    pub node: Option<String>,
    /// Only messages to or from this JID.
    pub with: Option<Jid>,
    /// Only messages at or after this time.
    pub start: Option<OffsetDateTime>,
    /// Only messages at or before this time.
    pub end: Option<OffsetDateTime>,
    /// Only messages before this archive id.
    pub before_id: Option<String>,
    /// Only messages after this archive id.
    pub after_id: Option<String>,
    /// Only these archive ids.
    pub ids: Vec<String>,
    /// The page wanted.
    pub rsm: RsmRequest,
    /// Send the page newest first.
    pub flip_page: bool,
}

impl MamQuery {
    /// A query for everything, in `ns`.
    pub fn new(ns: MamNs) -> MamQuery {
        MamQuery {
            ns,
            queryid: None,
            node: None,
            with: None,
            start: None,
            end: None,
            before_id: None,
            after_id: None,
            ids: Vec::new(),
            rsm: RsmRequest::default(),
            flip_page: false,
        }
    }

    /// Reads a `<query/>` payload.
    pub fn parse(query: &Element) -> Result<MamQuery, MamError> {
        let version = MamNs::of(query.ns()).ok_or(MamError::NotMam)?;
        if query.name() != "query" {
            return Err(MamError::NotMam);
        }
        let mut parsed = MamQuery::new(version);
        parsed.queryid = query.get_attr("queryid").map(str::to_owned);
        parsed.node = query.get_attr("node").map(str::to_owned);
        parsed.flip_page = query.has_child("flip-page", version.as_str());
        if let Some(set) = query.get_child("set", ns::RSM) {
            parsed.rsm = RsmRequest::parse(set)?;
        }
        if let Some(form) = query
            .get_child("x", ns::DATA_FORMS)
            .and_then(DataForm::parse)
        {
            parsed.read_form(&form)?;
        }
        Ok(parsed)
    }

    fn read_form(&mut self, form: &DataForm) -> Result<(), MamError> {
        if form
            .form_type
            .as_deref()
            .is_some_and(|t| t != self.ns.as_str())
        {
            return Err(MamError::WrongFormType);
        }
        if let Some(unknown) = form
            .fields
            .iter()
            .find(|f| !FIELDS.contains(&f.var.as_str()))
        {
            return Err(MamError::UnknownField(unknown.var.clone()));
        }
        self.with = single(form, "with")?
            .map(|with| parse_address(with).map_err(|_| MamError::BadField("with")))
            .transpose()?;
        self.start = time_field(form, "start")?;
        self.end = time_field(form, "end")?;
        self.before_id = single(form, "before-id")?.map(str::to_owned);
        self.after_id = single(form, "after-id")?.map(str::to_owned);
        self.ids = form
            .fields
            .iter()
            .filter(|f| f.var == "ids")
            .flat_map(|f| f.values.iter().cloned())
            .collect();
        Ok(())
    }

    /// The `<query/>` element, for tests and for queries the server sends to other archives.
    pub fn to_element(&self) -> Element {
        let mut fields = Vec::new();
        let mut add = |var: &str, values: Vec<String>| {
            if !values.is_empty() {
                fields.push(Field {
                    var: var.to_owned(),
                    values,
                    ..Field::default()
                });
            }
        };
        add("with", self.with.iter().map(Jid::to_string).collect());
        add("start", self.start.into_iter().map(datetime).collect());
        add("end", self.end.into_iter().map(datetime).collect());
        add("before-id", self.before_id.iter().cloned().collect());
        add("after-id", self.after_id.iter().cloned().collect());
        add("ids", self.ids.clone());
        let mut query = Element::new("query", self.ns.as_str())
            .attr_opt("queryid", self.queryid.clone())
            .attr_opt("node", self.node.clone());
        if !fields.is_empty() {
            let form = DataForm {
                kind: "submit".to_owned(),
                form_type: Some(self.ns.as_str().to_owned()),
                fields,
            };
            query.append_child(form.to_element());
        }
        if self.rsm != RsmRequest::default() {
            query.append_child(self.rsm.to_element());
        }
        if self.flip_page {
            query.append_child(Element::new("flip-page", self.ns.as_str()));
        }
        query
    }
}

/// The only value of a single-valued field, if the field is present with a value.
fn single<'a>(form: &'a DataForm, var: &'static str) -> Result<Option<&'a str>, MamError> {
    let mut values = form
        .fields
        .iter()
        .filter(|f| f.var == var)
        .flat_map(|f| &f.values);
    let first = values.next();
    match values.next() {
        Some(_) => Err(MamError::BadField(var)),
        None => Ok(first.map(String::as_str)),
    }
}

fn time_field(form: &DataForm, var: &'static str) -> Result<Option<OffsetDateTime>, MamError> {
    single(form, var)?
        .map(|text| parse_datetime(text).map_err(|_| MamError::BadField(var)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::Condition;
    use time::macros::datetime;

    fn parse(xml: &str) -> Result<MamQuery, MamError> {
        MamQuery::parse(&Element::parse(xml).expect("xml"))
    }

    fn form_query(fields: &str) -> String {
        format!(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
             {fields}</x></query>"
        )
    }

    #[test]
    fn a_bare_query_keeps_its_queryid_and_matches_everything() {
        let query = parse("<query xmlns='urn:xmpp:mam:2' queryid='f27'/>").expect("query");
        let mut expected = MamQuery::new(MamNs::V2);
        expected.queryid = Some("f27".to_owned());
        assert_eq!(query, expected);
        assert_eq!(MamQuery::parse(&query.to_element()), Ok(query));
    }

    #[test]
    fn the_with_and_timespan_examples_read_their_fields() {
        let with = parse(&form_query(
            "<field var='with'><value>juliet@capulet.lit</value></field>",
        ))
        .expect("query");
        assert_eq!(with.with, Jid::new("juliet@capulet.lit").ok());
        let span = parse(&form_query(
            "<field var='start'><value>2010-06-07T00:00:00Z</value></field>\
             <field var='end'><value>2010-07-07T13:23:54Z</value></field>",
        ))
        .expect("query");
        assert_eq!(span.start, Some(datetime!(2010-06-07 00:00:00 UTC)));
        assert_eq!(span.end, Some(datetime!(2010-07-07 13:23:54 UTC)));
        assert_eq!(MamQuery::parse(&span.to_element()), Ok(span));
    }

    #[test]
    fn the_id_examples_read_before_after_and_ids() {
        let between = parse(&form_query(
            "<field var='after-id'><value>28482-98726-73623</value></field>\
             <field var='before-id'><value>09af3-cc343-b409f</value></field>",
        ))
        .expect("query");
        assert_eq!(between.after_id.as_deref(), Some("28482-98726-73623"));
        assert_eq!(between.before_id.as_deref(), Some("09af3-cc343-b409f"));
        let ids = parse(&form_query(
            "<field var='ids'><value>a</value><value>b</value></field>",
        ))
        .expect("query");
        assert_eq!(ids.ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(MamQuery::parse(&ids.to_element()), Ok(ids));
    }

    #[test]
    fn the_flipped_page_example_reads_rsm_and_flip_page() {
        let query = parse(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
             <field var='start'><value>2010-08-07T00:00:00Z</value></field></x>\
             <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>09af3-cc343-b409f</after></set>\
             <flip-page/></query>",
        )
        .expect("query");
        assert!(query.flip_page);
        assert_eq!(query.rsm.max, Some(10));
        assert_eq!(query.rsm.after.as_deref(), Some("09af3-cc343-b409f"));
        assert_eq!(MamQuery::parse(&query.to_element()), Ok(query));
    }

    #[test]
    fn an_unknown_field_is_refused_as_not_implemented() {
        let error = parse(&form_query(
            "<field type='text-single' var='{http://example.com/}free-text-search'><value>x</value></field>",
        ))
        .expect_err("unknown field");
        assert_eq!(
            error,
            MamError::UnknownField("{http://example.com/}free-text-search".to_owned())
        );
        assert_eq!(error.condition(), Condition::FeatureNotImplemented);
        let groupchat = parse(&form_query(
            "<field var='include-groupchat'><value>true</value></field>",
        ));
        assert!(matches!(groupchat, Err(MamError::UnknownField(_))));
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        let date = parse(&form_query(
            "<field var='start'><value>last tuesday</value></field>",
        ));
        assert_eq!(date, Err(MamError::BadField("start")));
        let jid = parse(&form_query("<field var='with'><value>@</value></field>"));
        assert_eq!(jid, Err(MamError::BadField("with")));
        let twice = parse(&form_query(
            "<field var='with'><value>a@b</value><value>c@d</value></field>",
        ));
        assert_eq!(twice, Err(MamError::BadField("with")));
        let max = parse(
            "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-3</max></set></query>",
        );
        assert!(matches!(max, Err(MamError::Rsm(_))));
        assert_eq!(max.expect_err("bad max").condition(), Condition::BadRequest);
    }

    #[test]
    fn older_namespaces_are_read_and_a_mismatched_form_type_is_refused() {
        let v1 = parse(
            "<query xmlns='urn:xmpp:mam:1' queryid='q'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field>\
             <field var='with'><value>a@b</value></field></x></query>",
        )
        .expect("query");
        assert_eq!(v1.ns, MamNs::V1);
        assert_eq!(v1.to_element().ns(), ns::MAM_1);
        let mismatched = parse(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>",
        );
        assert_eq!(mismatched, Err(MamError::WrongFormType));
        assert_eq!(
            parse("<query xmlns='urn:xmpp:mam:3'/>"),
            Err(MamError::NotMam)
        );
        assert_eq!(
            parse("<prefs xmlns='urn:xmpp:mam:2'/>"),
            Err(MamError::NotMam)
        );
    }
}
