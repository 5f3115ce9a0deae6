//! S3 Select's FROM path over JSON: `FROM S3Object[*].Records[*] r` makes a record of
//! every element of every root value's `Records` array.
//!
//! A path is made of `.name` or `['name']` (a field), `[n]` (an array element), `[*]`
//! (every element) and `.*` (every field value). Each root value of the object yields at
//! least one record: where the path finds nothing the record is MISSING, an empty record
//! (`{}` in JSON output), as in S3. A record that is not a JSON object (`S3Object[*].
//! Rules[*].id` finds strings) becomes a one-field object named after the row: the
//! alias, else the path's last name, else `_1`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name` (any case unless quoted) or `['name']` (exact).
    Field { name: String, exact: bool },
    /// `[n]`.
    Element(usize),
    /// `[*]`.
    EveryElement,
    /// `.*`.
    EveryField,
}

/// The path after `S3Object[*]`, and the name its records go by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromPath {
    pub steps: Vec<Step>,
    pub row_name: String,
}

impl FromPath {
    /// The name a row goes by when the query gives it no alias.
    pub fn default_row_name(steps: &[Step]) -> String {
        match steps.last() {
            Some(Step::Field { name, .. }) => name.clone(),
            _ => "_1".to_owned(),
        }
    }

    /// The records one root value of the object yields (at least one), each an object.
    pub fn records(&self, root: Value) -> Vec<Value> {
        // None is MISSING: it stays one record through every later step.
        let mut current: Vec<Option<Value>> = vec![Some(root)];
        for step in &self.steps {
            let mut next = Vec::with_capacity(current.len());
            for value in current {
                match (step, value) {
                    (Step::Field { name, exact }, Some(Value::Object(mut fields))) => {
                        next.push(take_field(&mut fields, name, *exact));
                    }
                    (Step::Element(i), Some(Value::Array(mut elements))) if *i < elements.len() => {
                        next.push(Some(elements.swap_remove(*i)));
                    }
                    (Step::EveryElement, Some(Value::Array(elements))) if !elements.is_empty() => {
                        next.extend(elements.into_iter().map(Some));
                    }
                    (Step::EveryField, Some(Value::Object(fields))) if !fields.is_empty() => {
                        next.extend(fields.into_iter().map(|(_, v)| Some(v)));
                    }
                    _ => next.push(None),
                }
            }
            current = next;
        }
        current
            .into_iter()
            .map(|value| match value {
                None => Value::Object(Map::new()),
                Some(Value::Object(fields)) => Value::Object(fields),
                Some(other) => Value::Object(Map::from_iter([(self.row_name.clone(), other)])),
            })
            .collect()
    }
}

/// The field `name` of an object: by exact name, else ignoring case unless `exact`.
fn take_field(fields: &mut Map<String, Value>, name: &str, exact: bool) -> Option<Value> {
    if let Some(value) = fields.remove(name) {
        return Some(value);
    }
    if exact {
        return None;
    }
    let key = fields.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    fields.remove(&key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> Step {
        Step::Field { name: name.to_owned(), exact: false }
    }

    fn records(steps: Vec<Step>, roots: &[Value]) -> Vec<Value> {
        let path = FromPath { row_name: FromPath::default_row_name(&steps), steps };
        roots.iter().flat_map(|root| path.records(root.clone())).collect()
    }

    #[test]
    fn the_s3_documentation_example_yields_missing_records_where_nothing_matches() {
        // From the S3 Select SELECT reference: `SELECT id FROM S3Object[*].Rules[*].id`.
        let roots = [
            json!({"Rules": [{"id": "1"}, {"expr": "y > x"}, {"id": "2", "expr": "z = DEBUG"}]}),
            json!({"created": "June 27", "modified": "July 6"}),
        ];
        let got = records(vec![field("Rules"), Step::EveryElement, field("id")], &roots);
        assert_eq!(got, vec![json!({"id": "1"}), json!({}), json!({"id": "2"}), json!({})]);
    }

    #[test]
    fn elements_and_field_values_by_wildcard_index_and_case() {
        let root = json!({"Books": [{"price": 1}, {"price": 2}], "meta": {"a": 1, "b": [true]}});
        assert_eq!(
            records(vec![field("books"), Step::EveryElement], std::slice::from_ref(&root)),
            vec![json!({"price": 1}), json!({"price": 2})]
        );
        assert_eq!(
            records(vec![Step::Field { name: "books".into(), exact: true }], std::slice::from_ref(&root)),
            vec![json!({})],
            "a quoted name is exact"
        );
        assert_eq!(
            records(vec![field("Books"), Step::Element(1)], std::slice::from_ref(&root)),
            vec![json!({"price": 2})]
        );
        assert_eq!(records(vec![field("Books"), Step::Element(5)], std::slice::from_ref(&root)), vec![json!({})]);
        assert_eq!(
            records(vec![field("meta"), Step::EveryField], std::slice::from_ref(&root)),
            vec![json!({"_1": 1}), json!({"_1": [true]})]
        );
        assert_eq!(records(vec![field("Books"), Step::EveryElement], &[json!({"Books": []})]), vec![json!({})]);
    }
}
