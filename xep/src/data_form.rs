//! XEP-0004: Data Forms, as used by publish-options and node configuration.

use crate::element::Element;
use crate::ns;

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    /// The field name.
    pub var: String,
    /// The field type (`text-single`, `list-single`, `boolean`, `hidden`, ...).
    pub kind: Option<String>,
    /// A label for humans.
    pub label: Option<String>,
    /// The values, in order.
    pub values: Vec<String>,
    /// Options of a list field.
    pub options: Vec<String>,
}

impl Field {
    /// A field with one value.
    pub fn new(var: &str, kind: &str, value: impl Into<String>) -> Field {
        Field {
            var: var.to_owned(),
            kind: Some(kind.to_owned()),
            values: vec![value.into()],
            ..Field::default()
        }
    }

    /// Adds list options.
    pub fn with_options(mut self, options: &[&str]) -> Field {
        self.options = options.iter().map(|o| (*o).to_owned()).collect();
        self
    }
}

/// A data form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataForm {
    /// `form`, `submit`, `cancel` or `result`.
    pub kind: String,
    /// The hidden FORM_TYPE value, if any.
    pub form_type: Option<String>,
    /// The other fields.
    pub fields: Vec<Field>,
}

impl DataForm {
    /// Reads an `<x xmlns='jabber:x:data'/>` element.
    pub fn parse(x: &Element) -> Option<DataForm> {
        if !x.is("x", ns::DATA_FORMS) {
            return None;
        }
        let mut form = DataForm {
            kind: x.get_attr("type").unwrap_or("form").to_owned(),
            ..DataForm::default()
        };
        for field in x.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let var = field.get_attr("var").unwrap_or_default().to_owned();
            let values: Vec<String> = field
                .children()
                .filter(|c| c.is("value", ns::DATA_FORMS))
                .map(Element::text_content)
                .collect();
            if var == "FORM_TYPE" {
                form.form_type = values.into_iter().next();
                continue;
            }
            form.fields.push(Field {
                var,
                kind: field.get_attr("type").map(str::to_owned),
                label: field.get_attr("label").map(str::to_owned),
                values,
                options: Vec::new(),
            });
        }
        Some(form)
    }

    /// The first value of a field.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.var == var)
            .and_then(|f| f.values.first())
            .map(String::as_str)
    }

    /// The `<x/>` element.
    pub fn to_element(&self) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).attr("type", self.kind.clone());
        if let Some(form_type) = &self.form_type {
            x.append_child(
                Element::new("field", ns::DATA_FORMS)
                    .attr("var", "FORM_TYPE")
                    .attr("type", "hidden")
                    .child(Element::new("value", ns::DATA_FORMS).text(form_type.clone())),
            );
        }
        for field in &self.fields {
            let mut element = Element::new("field", ns::DATA_FORMS)
                .attr("var", field.var.clone())
                .attr_opt("type", field.kind.clone())
                .attr_opt("label", field.label.clone());
            for option in &field.options {
                element.append_child(
                    Element::new("option", ns::DATA_FORMS)
                        .child(Element::new("value", ns::DATA_FORMS).text(option.clone())),
                );
            }
            for value in &field.values {
                element.append_child(Element::new("value", ns::DATA_FORMS).text(value.clone()));
            }
            x.append_child(element);
        }
        x
    }
}

/// Parses an XEP-0004 boolean.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_form_type_and_values() {
        let x = Element::parse(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:t</value></field><field var='a'><value>1</value></field></x>",
        )
        .expect("xml");
        let form = DataForm::parse(&x).expect("form");
        assert_eq!(form.form_type.as_deref(), Some("urn:t"));
        assert_eq!(form.value("a"), Some("1"));
        assert_eq!(DataForm::parse(&form.to_element()), Some(form));
    }
}
