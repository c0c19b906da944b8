//! Parameter coercion and validation of the metadata APIs (spec 5): each
//! helper reads one parameter the lenient way bk-monitor's serializers do
//! and names the first failure in Chinese or English.

use serde_json::{Map, Value};

/// Why one parameter was refused (spec 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Detail {
    Required,
    Null,
    Blank,
    NotString,
    TooLong(usize),
    NotInteger,
    Below(i64),
    Above(i64),
    NotBool,
    NotList(&'static str),
    ListTooLong(usize),
    NotObject(&'static str),
    Pattern,
}

impl Detail {
    pub(crate) fn text(&self, en: bool) -> String {
        match (self, en) {
            (Detail::Required, false) => "该字段是必填项。".into(),
            (Detail::Required, true) => "This field is required.".into(),
            (Detail::Null, false) => "该字段不能为 null。".into(),
            (Detail::Null, true) => "This field may not be null.".into(),
            (Detail::Blank, false) => "该字段不能为空。".into(),
            (Detail::Blank, true) => "This field may not be blank.".into(),
            (Detail::NotString, false) => "不是有效的字符串。".into(),
            (Detail::NotString, true) => "Not a valid string.".into(),
            (Detail::TooLong(n), false) => format!("请确保这个字段不能超过 {n} 个字符。"),
            (Detail::TooLong(n), true) => {
                format!("Ensure this field has no more than {n} characters.")
            }
            (Detail::NotInteger, false) => "请填写合法的整数值。".into(),
            (Detail::NotInteger, true) => "A valid integer is required.".into(),
            (Detail::Below(m), false) => format!("请确保该值大于或者等于 {m}。"),
            (Detail::Below(m), true) => {
                format!("Ensure this value is greater than or equal to {m}.")
            }
            (Detail::Above(m), false) => format!("请确保该值小于或者等于 {m}。"),
            (Detail::Above(m), true) => format!("Ensure this value is less than or equal to {m}."),
            (Detail::NotBool, false) => "必须是有效的布尔值。".into(),
            (Detail::NotBool, true) => "Must be a valid boolean.".into(),
            (Detail::NotList(t), false) => format!("期望为一个包含物件的列表，得到的类型是“{t}”。"),
            (Detail::NotList(t), true) => format!("Expected a list of items but got type \"{t}\"."),
            (Detail::ListTooLong(n), false) => format!("该字段不能超过 {n} 个元素。"),
            (Detail::ListTooLong(n), true) => {
                format!("Ensure this field has no more than {n} elements.")
            }
            (Detail::NotObject(t), false) => format!("期望是包含类目的字典，得到类型为 “{t}”。"),
            (Detail::NotObject(t), true) => {
                format!("Expected a dictionary of items but got type \"{t}\".")
            }
            (Detail::Pattern, false) => "输入值不匹配要求的模式。".into(),
            (Detail::Pattern, true) => "This value does not match the required pattern.".into(),
        }
    }
}

/// A refused parameter: its name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) param: &'static str,
    pub(crate) detail: Detail,
}

pub(crate) type Checked<T> = Result<T, FieldError>;

/// Python's name for a JSON value's type (spec 5.2).
pub(crate) fn py_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "str",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::Bool(_) => "bool",
        Value::Object(_) => "dict",
        Value::Array(_) => "list",
        Value::Null => "NoneType",
    }
}

/// The request's merged parameters, read one by one in table order.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    pub(crate) map: &'a Map<String, Value>,
    /// Whether the caller may see group tokens (it may write group data).
    pub(crate) shows_tokens: bool,
}

impl Params<'_> {
    /// The raw value, `None` when absent.
    fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    fn fail<T>(param: &'static str, detail: Detail) -> Checked<T> {
        Err(FieldError { param, detail })
    }

    /// Present and not null, or the required/null error.
    fn required(&self, param: &'static str) -> Checked<&Value> {
        match self.raw(param) {
            None => Self::fail(param, Detail::Required),
            Some(Value::Null) => Self::fail(param, Detail::Null),
            Some(v) => Ok(v),
        }
    }

    /// Present and not null; optional parameters treat null as absent.
    fn optional(&self, param: &'static str) -> Option<&Value> {
        self.raw(param).filter(|v| !v.is_null())
    }

    pub(crate) fn string(
        &self,
        param: &'static str,
        max: usize,
        blank_ok: bool,
    ) -> Checked<String> {
        let v = self.required(param)?;
        string_of(param, v, max, blank_ok)
    }

    pub(crate) fn opt_string(
        &self,
        param: &'static str,
        max: usize,
        blank_ok: bool,
    ) -> Checked<Option<String>> {
        self.optional(param)
            .map(|v| string_of(param, v, max, blank_ok))
            .transpose()
    }

    pub(crate) fn int(&self, param: &'static str, min: i64, max: i64) -> Checked<i64> {
        let v = self.required(param)?;
        int_of(param, v, min, max)
    }

    pub(crate) fn opt_int(&self, param: &'static str, min: i64, max: i64) -> Checked<Option<i64>> {
        self.optional(param)
            .map(|v| int_of(param, v, min, max))
            .transpose()
    }

    pub(crate) fn bool(&self, param: &'static str) -> Checked<bool> {
        let v = self.required(param)?;
        bool_of(v).ok_or(FieldError {
            param,
            detail: Detail::NotBool,
        })
    }

    pub(crate) fn opt_bool(&self, param: &'static str) -> Checked<Option<bool>> {
        self.optional(param)
            .map(|v| {
                bool_of(v).ok_or(FieldError {
                    param,
                    detail: Detail::NotBool,
                })
            })
            .transpose()
    }

    pub(crate) fn opt_list(&self, param: &'static str, max: usize) -> Checked<Option<&Vec<Value>>> {
        match self.optional(param) {
            None => Ok(None),
            Some(Value::Array(a)) if a.len() > max => Self::fail(param, Detail::ListTooLong(max)),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Self::fail(param, Detail::NotList(py_type(other))),
        }
    }

    pub(crate) fn opt_object(&self, param: &'static str) -> Checked<Option<&Map<String, Value>>> {
        match self.optional(param) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(other) => Self::fail(param, Detail::NotObject(py_type(other))),
        }
    }
}

fn string_of(param: &'static str, v: &Value, max: usize, blank_ok: bool) -> Checked<String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Params::fail(param, Detail::NotString),
    };
    if text.is_empty() && !blank_ok {
        return Params::fail(param, Detail::Blank);
    }
    if text.chars().count() > max {
        return Params::fail(param, Detail::TooLong(max));
    }
    Ok(text)
}

fn int_of(param: &'static str, v: &Value, min: i64, max: i64) -> Checked<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => int_text(s),
        _ => None,
    };
    let Some(n) = n else {
        return Params::fail(param, Detail::NotInteger);
    };
    if n < min {
        return Params::fail(param, Detail::Below(min));
    }
    if n > max {
        return Params::fail(param, Detail::Above(max));
    }
    Ok(n)
}

/// `[+-]digits[.0*]` with surrounding whitespace (spec 5.4).
fn int_text(s: &str) -> Option<i64> {
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    let digits = int.strip_prefix(['+', '-']).unwrap_or(int);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    int.strip_prefix('+').unwrap_or(int).parse().ok()
}

/// Django REST framework's boolean words (spec 5.4).
pub(crate) fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.as_str() {
            "t" | "T" | "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on"
            | "On" | "ON" | "1" => Some(true),
            "f" | "F" | "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off"
            | "Off" | "OFF" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercions_follow_the_serializers() {
        let body = json!({"a": " 42 ", "b": "3.00", "c": 5.0, "d": "abc", "e": true, "f": "  ",
            "g": 7, "h": "yes", "i": "maybe", "j": null});
        let Value::Object(map) = body else { return };
        let p = Params {
            map: &map,
            shows_tokens: true,
        };
        assert_eq!(p.int("a", 1, 100), Ok(42));
        assert_eq!(p.int("b", 1, 100), Ok(3));
        assert_eq!(p.int("c", 1, 100), Ok(5));
        assert_eq!(
            p.int("d", 1, 100).map_err(|e| e.detail),
            Err(Detail::NotInteger)
        );
        assert_eq!(
            p.int("e", 1, 100).map_err(|e| e.detail),
            Err(Detail::NotInteger)
        );
        assert_eq!(
            p.int("g", 10, 100).map_err(|e| e.detail),
            Err(Detail::Below(10))
        );
        assert_eq!(
            p.string("f", 10, false).map_err(|e| e.detail),
            Err(Detail::Blank)
        );
        assert_eq!(p.string("g", 10, false), Ok("7".into()));
        assert_eq!(
            p.string("e", 10, false).map_err(|e| e.detail),
            Err(Detail::NotString)
        );
        assert_eq!(p.bool("h"), Ok(true));
        assert_eq!(p.bool("i").map_err(|e| e.detail), Err(Detail::NotBool));
        assert_eq!(
            p.string("j", 10, false).map_err(|e| e.detail),
            Err(Detail::Null)
        );
        assert_eq!(
            p.string("zz", 10, false).map_err(|e| e.detail),
            Err(Detail::Required)
        );
        assert_eq!(p.opt_string("j", 10, false), Ok(None));
        assert_eq!(
            Detail::NotList("str").text(false),
            "期望为一个包含物件的列表，得到的类型是“str”。"
        );
    }
}
