//! Stored values, their kinds, and the not-yet-typed values writes carry.

/// One stored value. Long and Double keep their own representation even
/// though both belong to the Numeric kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FieldValue {
    Long(i64),
    Double(f64),
    Bool(bool),
    String(String),
    Bytes(Vec<u8>),
}

/// The value family fixed per (metric, field) by its first accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// Long, Double and Boolean.
    Numeric,
    String,
    Bytes,
}

impl FieldValue {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Long(_) | Self::Double(_) | Self::Bool(_) => Kind::Numeric,
            Self::String(_) => Kind::String,
            Self::Bytes(_) => Kind::Bytes,
        }
    }

    /// The value as a number, booleans as 1/0; `None` for text and bytes.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Long(v) => Some(*v as f64),
            Self::Double(v) => Some(*v),
            Self::Bool(b) => Some(f64::from(u8::from(*b))),
            Self::String(_) | Self::Bytes(_) => None,
        }
    }

    /// The value as an integer when it is one (Long or Boolean).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Long(v) => Some(*v),
            Self::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// What a text value means when read as a number.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberText {
    /// The text is not number-like at all (`"on"`, `"High CPU Load"`).
    NotNumeric,
    /// The text is a number (`"42"`, `"1.5e3"`).
    Number(FieldValue),
    /// The text looks numeric but cannot be stored as a number
    /// (`"NaN"`, `"Infinity"`, an integer beyond i64).
    Invalid,
}

/// A written value whose final form may depend on the kind the field
/// already has (OpenTSDB stores `"42"` as text in a String metric and as
/// Long elsewhere). The engine resolves it against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueInput {
    /// Fully typed by the wire format.
    Typed(FieldValue),
    /// A JSON string: stays text in a String field, else read as a number.
    Text { text: String, number: NumberText },
}

impl ValueInput {
    /// Resolves the value against the field's current kind.
    pub fn resolve(self, kind: Option<Kind>) -> Result<FieldValue, crate::PointError> {
        use crate::PointError;
        match self {
            Self::Typed(v) => match (kind, v.kind()) {
                (Some(k), vk) if k != vk => Err(PointError::KindMismatch {
                    stored: k,
                    written: vk,
                }),
                _ => Ok(v),
            },
            Self::Text { text, number } => match (kind, number) {
                (Some(Kind::String), _) => Ok(FieldValue::String(text)),
                (Some(Kind::Bytes), _) => Err(PointError::KindMismatch {
                    stored: Kind::Bytes,
                    written: Kind::String,
                }),
                (_, NumberText::Number(v)) => Ok(v),
                (_, NumberText::Invalid) | (Some(Kind::Numeric), NumberText::NotNumeric) => {
                    Err(PointError::NotANumber)
                }
                (None, NumberText::NotNumeric) => Ok(FieldValue::String(text)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PointError;

    fn text(t: &str, n: NumberText) -> ValueInput {
        ValueInput::Text {
            text: t.into(),
            number: n,
        }
    }

    #[test]
    fn text_resolution_follows_the_field_kind() {
        let num = || NumberText::Number(FieldValue::Long(42));
        assert_eq!(
            text("42", num()).resolve(Some(Kind::String)),
            Ok(FieldValue::String("42".into()))
        );
        assert_eq!(text("42", num()).resolve(None), Ok(FieldValue::Long(42)));
        assert_eq!(
            text("abc", NumberText::NotNumeric).resolve(Some(Kind::Numeric)),
            Err(PointError::NotANumber)
        );
        assert_eq!(
            text("abc", NumberText::NotNumeric).resolve(None),
            Ok(FieldValue::String("abc".into()))
        );
        assert_eq!(
            text("NaN", NumberText::Invalid).resolve(None),
            Err(PointError::NotANumber)
        );
        assert_eq!(
            ValueInput::Typed(FieldValue::Bool(true)).resolve(Some(Kind::String)),
            Err(PointError::KindMismatch {
                stored: Kind::String,
                written: Kind::Numeric
            })
        );
    }
}
