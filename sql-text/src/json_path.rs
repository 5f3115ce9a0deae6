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
    use proptest::prelude::*;
    use serde_json::json;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-cA-C]{1,2}", inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn path_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            ("[a-cA-C]{1,2}", any::<bool>()).prop_map(|(name, exact)| Step::Field { name, exact }),
            (0usize..4).prop_map(Step::Element),
            Just(Step::EveryElement),
            Just(Step::EveryField),
        ]
    }

    /// How many values a path finds (MISSING not counted): the specification, written
    /// as plainly as possible, against which `records` is checked.
    fn found(value: &Value, steps: &[Step]) -> usize {
        let Some((step, rest)) = steps.split_first() else { return 1 };
        match (step, value) {
            (Step::Field { name, exact }, Value::Object(fields)) => fields
                .get(name)
                .or_else(|| {
                    (!exact)
                        .then(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
                        .flatten()
                })
                .map_or(0, |v| found(v, rest)),
            (Step::Element(i), Value::Array(elements)) => elements.get(*i).map_or(0, |v| found(v, rest)),
            (Step::EveryElement, Value::Array(elements)) => elements.iter().map(|v| found(v, rest)).sum(),
            (Step::EveryField, Value::Object(fields)) => fields.values().map(|v| found(v, rest)).sum(),
            _ => 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn every_root_yields_objects_at_least_one_and_every_value_the_path_finds(
            root in json_value(),
            steps in prop::collection::vec(path_step(), 0..5),
        ) {
            let path = FromPath { row_name: FromPath::default_row_name(&steps), steps: steps.clone() };
            let records = path.records(root.clone());
            prop_assert!(!records.is_empty(), "no record for {root} along {steps:?}");
            prop_assert!(records.iter().all(Value::is_object), "{records:?}");
            let non_empty = records.iter().filter(|r| r.as_object().is_some_and(|o| !o.is_empty())).count();
            let found = found(&root, &steps);
            // A found empty object is an empty record too; every other found value is one.
            prop_assert!(non_empty <= found && found <= records.len(), "{root} along {steps:?}: {records:?}, found {found}");
        }
    }

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
