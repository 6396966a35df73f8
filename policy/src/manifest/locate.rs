//! Finds the line and column of a field path (`spec.ingress[0].ports`) in a YAML document.
//!
//! serde_yaml keeps no spans on values, but it reports the location of any error raised while a
//! node is being deserialized. So the locator walks the document along the path with a visitor
//! that raises a marker error on reaching the target node, and reads the location off it.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_yaml::Value;

const MARKER: &str = "\u{1}vigil-locate";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            if bracket > 0 {
                out.push(Segment::Key(rest[..bracket].to_owned()));
            }
            rest = &rest[bracket..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    out.push(Segment::Index(i));
                }
                rest = &stripped[end + 1..];
            }
        } else {
            out.push(Segment::Key(rest.to_owned()));
        }
    }
    out
}

/// The 1-based (line, column) of the node at `path` in `text`, when the path exists.
pub(super) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segs = segments(path);
    let de = serde_yaml::Deserializer::from_str(text);
    match Seek(&segs).deserialize(de) {
        Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

struct Seek<'a>(&'a [Segment]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Seek<'_> {
    fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(MARKER))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.0.split_first() {
            None => Err(A::Error::custom(MARKER)),
            Some((Segment::Key(key), rest)) => {
                while let Some(k) = map.next_key::<Value>()? {
                    if k.as_str() == Some(key.as_str()) {
                        return map.next_value_seed(Seek(rest));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(())
            }
            Some(_) => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.0.split_first() {
            None => Err(A::Error::custom(MARKER)),
            Some((Segment::Index(index), rest)) => {
                for _ in 0..*index {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        return Ok(());
                    }
                }
                seq.next_element_seed(Seek(rest))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(())
            }
            Some(_) => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields() {
        let text =
            "spec:\n  ingress:\n    - action: Allow\n      source:\n        nets: [10.0.0.0/8]\n";
        assert_eq!(
            locate(text, "spec.ingress[0].source.nets[0]"),
            Some((5, 16))
        );
        assert_eq!(locate(text, "spec.ingress[0].action"), Some((3, 15)));
        assert_eq!(locate(text, "spec.egress"), None);
        assert_eq!(
            segments("a.b[2][3].c"),
            vec![
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(2),
                Segment::Index(3),
                Segment::Key("c".into())
            ]
        );
    }
}
