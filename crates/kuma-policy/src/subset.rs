//! Subsets: conjunctions of tag conditions (`kuma.io/service = web`,
//! `version != v2`) describing a group of clients or destinations, as Kuma's
//! rules print them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// One condition of a subset. `not` negates it: the tag is absent or differs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not: bool,
}

impl Tag {
    pub fn new(key: &str, value: &str) -> Tag {
        Tag {
            key: key.to_string(),
            value: value.to_string(),
            not: false,
        }
    }

    pub fn not(key: &str, value: &str) -> Tag {
        Tag {
            not: true,
            ..Tag::new(key, value)
        }
    }
}

/// A conjunction of tags; empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Subset(pub Vec<Tag>);

/// The tags of one concrete client or destination.
pub type Element = BTreeMap<String, String>;

impl Subset {
    /// Everything (`kind: Mesh`).
    pub fn mesh() -> Subset {
        Subset(Vec::new())
    }

    /// Positive conditions from a tag map, sorted by key.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> Subset {
        let mut tags: Vec<Tag> = tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect();
        tags.sort();
        Subset(tags)
    }

    pub fn tags(&self) -> &[Tag] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn num_positive(&self) -> usize {
        self.0.iter().filter(|t| !t.not).count()
    }

    /// Whether a concrete element (a client's or destination's tags) falls in
    /// this subset. A subset made only of negations also holds elements that
    /// carry none of its keys.
    pub fn contains_element(&self, element: &Element) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if element.is_empty() {
            return false;
        }
        let mut overlap = false;
        for tag in &self.0 {
            match element.get(&tag.key) {
                Some(value) => {
                    overlap = true;
                    if (*value == tag.value) == tag.not {
                        return false;
                    }
                }
                None if !tag.not => return false,
                None => {}
            }
        }
        overlap || self.num_positive() == 0
    }

    /// Whether every element of `other` is in `self` (`self` is the broader
    /// set). Each condition of `self` must be implied by every condition
    /// `other` has on the same key.
    pub fn is_subset(&self, other: &Subset) -> bool {
        if self.0.is_empty() {
            return true;
        }
        self.0.iter().all(|tag| {
            let mut on_key = other.0.iter().filter(|o| o.key == tag.key).peekable();
            on_key.peek().is_some() && on_key.all(|o| implies(o, tag))
        })
    }

    /// Whether some element could be in both subsets; only conflicting
    /// positive conditions on one key rule that out.
    pub fn intersects(&self, other: &Subset) -> bool {
        if self.0.is_empty() || other.0.is_empty() {
            return true;
        }
        self.0.iter().filter(|t| !t.not).all(|tag| {
            other
                .0
                .iter()
                .filter(|o| !o.not && o.key == tag.key)
                .all(|o| o == tag)
        })
    }

    /// The conditions in one order (most subsets already are).
    fn canonical(&self) -> Cow<'_, [Tag]> {
        if self.0.is_sorted() {
            return Cow::Borrowed(&self.0);
        }
        let mut tags = self.0.clone();
        tags.sort();
        Cow::Owned(tags)
    }
}

/// `condition` (held by an element) guarantees `required`.
fn implies(condition: &Tag, required: &Tag) -> bool {
    match (required.not, condition.not) {
        (false, false) | (true, true) => required.value == condition.value,
        // `key = a` guarantees `key != b` for any other b.
        (true, false) => required.value != condition.value,
        (false, true) => false,
    }
}

/// Subsets with equal conditions, in any order, collapse to the first.
pub fn deduplicate(subsets: Vec<Subset>) -> Vec<Subset> {
    let keep: HashSet<usize> = distinct(subsets.iter()).into_iter().collect();
    subsets
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, s)| s)
        .collect()
}

/// The positions of the subsets [`deduplicate`] keeps, ascending, without
/// copying any subset.
pub fn distinct<'a>(subsets: impl IntoIterator<Item = &'a Subset>) -> Vec<usize> {
    let mut seen: HashSet<Cow<'a, [Tag]>> = HashSet::new();
    subsets
        .into_iter()
        .enumerate()
        .filter(|(_, s)| seen.insert(s.canonical()))
        .map(|(i, _)| i)
        .collect()
}

/// Every way to pick, for each key, one of its values or "none of them":
/// the regions a set of overlapping subsets cuts the client space into.
///
/// The order is Kuma's: an odometer over the keys (first key turning
/// fastest) where a key's digit `i < n` picks its `n-1-i`th value and `n`
/// picks the negations; the all-zero state comes last.
pub fn combinations(sorted_tags: &[Tag]) -> Vec<Subset> {
    let mut keys: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    for tag in sorted_tags {
        let i = *key_index.entry(&tag.key).or_insert_with(|| {
            keys.push((&tag.key, Vec::new()));
            keys.len() - 1
        });
        if !keys[i].1.contains(&tag.value.as_str()) {
            keys[i].1.push(&tag.value);
        }
    }
    let current = |digits: &[usize]| -> Subset {
        let mut out = Vec::new();
        for ((key, values), &d) in keys.iter().zip(digits) {
            if d == values.len() {
                out.extend(values.iter().map(|v| Tag::not(key, v)));
            } else {
                out.push(Tag::new(key, values[values.len() - d - 1]));
            }
        }
        Subset(out)
    };
    let mut digits = vec![0usize; keys.len()];
    let mut out = Vec::new();
    loop {
        let mut advanced = false;
        for (i, (_, values)) in keys.iter().enumerate() {
            digits[i] += 1;
            if digits[i] <= values.len() {
                advanced = true;
                break;
            }
            digits[i] = 0;
        }
        out.push(current(&digits));
        if !advanced {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(pairs: &[(&str, &str)]) -> Element {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn element_membership_with_negations() {
        let ss = Subset(vec![Tag::new("app", "web"), Tag::not("version", "v2")]);
        assert!(ss.contains_element(&el(&[("app", "web"), ("version", "v1")])));
        assert!(ss.contains_element(&el(&[("app", "web")])));
        assert!(!ss.contains_element(&el(&[("app", "web"), ("version", "v2")])));
        assert!(!ss.contains_element(&el(&[("app", "api")])));
        let only_not = Subset(vec![Tag::not("app", "web")]);
        assert!(only_not.contains_element(&el(&[("zone", "east")])));
        assert!(!only_not.contains_element(&el(&[])));
        assert!(Subset::mesh().contains_element(&el(&[])));
    }

    #[test]
    fn subset_and_intersection() {
        let web = Subset(vec![Tag::new("app", "web")]);
        let web_v1 = Subset(vec![Tag::new("app", "web"), Tag::new("v", "1")]);
        let not_api = Subset(vec![Tag::not("app", "api")]);
        assert!(web.is_subset(&web_v1));
        assert!(!web_v1.is_subset(&web));
        assert!(not_api.is_subset(&web));
        assert!(!web.is_subset(&not_api));
        assert!(Subset::mesh().is_subset(&web));
        assert!(web.intersects(&web_v1));
        assert!(!web.intersects(&Subset(vec![Tag::new("app", "api")])));
        assert!(web.intersects(&not_api));
    }

    #[test]
    fn combinations_follow_the_odometer() {
        let tags = vec![Tag::new("a", "1"), Tag::new("a", "2"), Tag::new("b", "x")];
        let got: Vec<Subset> = combinations(&tags);
        assert_eq!(got.len(), 3 * 2);
        assert_eq!(got[0], Subset(vec![Tag::new("a", "1"), Tag::new("b", "x")]));
        assert_eq!(
            got[1],
            Subset(vec![
                Tag::not("a", "1"),
                Tag::not("a", "2"),
                Tag::new("b", "x")
            ])
        );
        assert_eq!(got[2], Subset(vec![Tag::new("a", "2"), Tag::not("b", "x")]));
        // the all-zero state closes the sequence
        assert_eq!(got[5], Subset(vec![Tag::new("a", "2"), Tag::new("b", "x")]));
        assert_eq!(combinations(&[]), vec![Subset::mesh()]);
    }
}
