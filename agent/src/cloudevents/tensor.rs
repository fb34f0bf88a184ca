//! Inference bodies as a [`Frame`]: named columns of `rows` rows, each row `width` cells wide.
//!
//! - KServe v1: `{"instances": [...]}` and `{"predictions": [...]}`; rows are scalars, arrays
//!   (one column named after the member) or objects (one column per key).
//! - Open Inference Protocol v2: `inputs` / `outputs` tensors with `name`, `shape`, `datatype`
//!   and `data`, the data row-major, flat or nested. The first dimension is the batch.
//! - Seldon Core v1: `{"data": {"ndarray": [...]}}` or `{"data": {"tensor": {"shape", "values"}}}`,
//!   read as one column named `data`.
//!
//! Tensor data is decoded straight into cells without building a JSON tree first, and checked
//! against its datatype and shape; every error names the tensor and the element.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One element of a tensor or instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A JSON integer.
    Int(i64),
    /// A JSON integer above `i64::MAX`.
    Uint(u64),
    /// Any other JSON number.
    Float(f64),
    /// A string (BYTES elements).
    Str(String),
}

impl Cell {
    /// The number this cell holds (booleans as 0 / 1).
    pub fn number(&self) -> Option<f64> {
        match *self {
            Self::Int(i) => Some(i as f64),
            Self::Uint(u) => Some(u as f64),
            Self::Float(f) => Some(f),
            Self::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// What kind of JSON value it was, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::Uint(_) => "an integer",
            Self::Float(_) => "a number",
            Self::Str(_) => "a string",
        }
    }

    fn from_value(v: &Value) -> Option<Cell> {
        Some(match v {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Cell::Int(i),
                (None, Some(u)) => Cell::Uint(u),
                _ => Cell::Float(n.as_f64()?),
            },
            Value::String(s) => Cell::Str(s.clone()),
            _ => return None,
        })
    }
}

/// A named column: `rows × width` cells, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Tensor name, instance key, or the v1 member (`instances`, `predictions`).
    pub name: String,
    /// Cells per row.
    pub width: usize,
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Column {
    /// Row `i`'s cells.
    pub fn row(&self, i: usize) -> &[Cell] {
        &self.cells[i * self.width..(i + 1) * self.width]
    }
}

/// Which protocol a body used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// KServe v1.
    V1,
    /// Open Inference Protocol v2.
    V2,
    /// Seldon Core v1.
    Seldon,
}

/// A decoded request or response body.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The protocol.
    pub protocol: Protocol,
    /// Rows (the batch size).
    pub rows: usize,
    /// The columns, in body order.
    pub columns: Vec<Column>,
    /// `model_version` of a v2 response.
    pub model_version: Option<String>,
}

impl Frame {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A CloudEvent refused (its envelope, its body, or a body that does not fit the mapping),
/// with the countable reason and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Refusal {
    /// One of [`super::REJECT_REASONS`].
    pub reason: &'static str,
    /// Dotted path, e.g. `inputs[input-0].data[7]`.
    pub field: String,
    /// In words.
    pub message: String,
}

pub fn refusal(
    reason: &'static str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Refusal {
    Refusal {
        reason,
        field: field.into(),
        message: message.into(),
    }
}

/// Whether a request or a response is being read (their v1 and v2 members differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// `instances` / `inputs`.
    Request,
    /// `predictions` / `outputs`.
    Response,
}

/// Collects nested arrays of scalars into a flat list of cells.
struct Flat<'a>(&'a mut Vec<Cell>);

impl<'de> DeserializeSeed<'de> for Flat<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flat<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("scalars or nested arrays of scalars")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Cell::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(Cell::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(Cell::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Cell::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0
            .push(i64::try_from(v).map_or(Cell::Uint(v), Cell::Int));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Cell::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Cell::Str(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.push(Cell::Str(v));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flat(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Tensor data, flattened while it is parsed.
#[derive(Debug, Default)]
struct FlatData(Vec<Cell>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut cells = Vec::new();
        d.deserialize_any(Flat(&mut cells))?;
        Ok(FlatData(cells))
    }
}

#[derive(Debug, Deserialize)]
struct V2Tensor {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    data: FlatData,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<IgnoredAny>,
}

/// Any body, either half, read in one pass; unknown members (`id`, `parameters`,
/// `model_name`) are ignored.
#[derive(Debug, Deserialize)]
struct AnyBody {
    #[serde(default)]
    inputs: Option<Vec<V2Tensor>>,
    #[serde(default)]
    outputs: Option<Vec<V2Tensor>>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    instances: Option<Value>,
    #[serde(default)]
    predictions: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
}

/// The largest number of cells a body may declare, whatever its shape claims.
const MAX_CELLS: u64 = 1 << 26;

/// What a datatype admits, decided once per tensor rather than per element.
#[derive(Clone, Copy)]
enum Admits {
    Bool,
    Bytes,
    Float,
    Int(i64, i64),
    Uint(u64),
}

fn check_datatype(datatype: &str, field: &str, cells: &[Cell]) -> Result<(), Refusal> {
    let admits = match datatype.to_ascii_uppercase().as_str() {
        "BOOL" => Admits::Bool,
        "BYTES" => Admits::Bytes,
        "FP16" | "FP32" | "FP64" => Admits::Float,
        "INT8" => Admits::Int(i8::MIN.into(), i8::MAX.into()),
        "INT16" => Admits::Int(i16::MIN.into(), i16::MAX.into()),
        "INT32" => Admits::Int(i32::MIN.into(), i32::MAX.into()),
        "INT64" => Admits::Int(i64::MIN, i64::MAX),
        "UINT8" => Admits::Uint(u8::MAX.into()),
        "UINT16" => Admits::Uint(u16::MAX.into()),
        "UINT32" => Admits::Uint(u32::MAX.into()),
        "UINT64" => Admits::Uint(u64::MAX),
        _ => {
            return Err(refusal(
                "datatype_mismatch",
                format!("{field}.datatype"),
                format!("{datatype:?} is not an Open Inference Protocol datatype"),
            ))
        }
    };
    let fits = |c: &Cell| match (admits, c) {
        (_, Cell::Null) => true,
        (Admits::Bool, Cell::Bool(_)) => true,
        (Admits::Bytes, Cell::Str(_)) => true,
        (Admits::Float, Cell::Int(_) | Cell::Uint(_) | Cell::Float(_)) => true,
        // JSON has no NaN or infinities; servers write them as strings. Read here, refused
        // per row as invalid numbers by the mapping.
        (Admits::Float, Cell::Str(s)) => is_non_finite(s),
        (Admits::Int(lo, hi), Cell::Int(v)) => (lo..=hi).contains(v),
        (Admits::Uint(hi), Cell::Int(v)) => u64::try_from(*v).is_ok_and(|v| v <= hi),
        (Admits::Uint(hi), Cell::Uint(v)) => *v <= hi,
        _ => false,
    };
    if let Some(i) = cells.iter().position(|c| !fits(c)) {
        return Err(refusal(
            "datatype_mismatch",
            format!("{field}.data[{i}]"),
            format!("{} does not fit datatype {datatype}", cells[i].kind()),
        ));
    }
    Ok(())
}

/// The spellings of NaN and the infinities servers put in JSON strings.
pub(crate) fn is_non_finite(s: &str) -> bool {
    matches!(s, "NaN" | "nan" | "Infinity" | "-Infinity" | "inf" | "-inf")
}

fn from_tensors(tensors: Vec<V2Tensor>, member: &str) -> Result<(usize, Vec<Column>), Refusal> {
    let mut rows: Option<(usize, String)> = None;
    let mut columns = Vec::with_capacity(tensors.len());
    for t in tensors {
        let field = format!("{member}[{}]", t.name);
        let declared = t
            .shape
            .iter()
            .try_fold(1u64, |acc, d| {
                acc.checked_mul(*d).filter(|n| *n <= MAX_CELLS)
            })
            .ok_or_else(|| {
                refusal(
                    "shape_mismatch",
                    format!("{field}.shape"),
                    "too many elements",
                )
            })?;
        if declared != t.data.0.len() as u64 {
            return Err(refusal(
                "shape_mismatch",
                format!("{field}.shape"),
                format!(
                    "shape {:?} holds {declared} elements but data has {}",
                    t.shape,
                    t.data.0.len()
                ),
            ));
        }
        check_datatype(&t.datatype, &field, &t.data.0)?;
        let batch = t.shape.first().copied().unwrap_or(1) as usize;
        let width = t.data.0.len().checked_div(batch).unwrap_or(0);
        match &rows {
            None => rows = Some((batch, t.name.clone())),
            Some((n, first)) if *n != batch => {
                return Err(refusal(
                    "shape_mismatch",
                    format!("{field}.shape"),
                    format!("batch size {batch}, but {first} has {n}"),
                ))
            }
            _ => {}
        }
        columns.push(Column {
            name: t.name,
            width,
            cells: t.data.0,
        });
    }
    Ok((rows.map_or(0, |r| r.0), columns))
}

/// Rows of JSON (v1 instances or predictions, Seldon ndarray) into columns.
fn from_rows(rows: &[Value], member: &str) -> Result<Vec<Column>, Refusal> {
    if rows.iter().all(Value::is_object) && !rows.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for r in rows {
            for k in r.as_object().into_iter().flat_map(|o| o.keys()) {
                if !names.contains(k) {
                    if names.len() >= 10_000 {
                        return Err(refusal("invalid_body", member, "too many keys"));
                    }
                    names.push(k.clone());
                }
            }
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let mut width = None;
            let mut per_row: Vec<Option<Vec<Cell>>> = Vec::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                match r.get(&name) {
                    None => per_row.push(None),
                    Some(v) => {
                        let cells = flatten(v, &format!("{member}[{i}].{name}"))?;
                        match width {
                            None => width = Some(cells.len()),
                            Some(w) if w != cells.len() => {
                                return Err(refusal(
                                    "shape_mismatch",
                                    format!("{member}[{i}].{name}"),
                                    format!("{} values, but earlier rows have {w}", cells.len()),
                                ))
                            }
                            _ => {}
                        }
                        per_row.push(Some(cells));
                    }
                }
            }
            let width = width.unwrap_or(1);
            let cells = per_row
                .into_iter()
                .flat_map(|r| r.unwrap_or_else(|| vec![Cell::Null; width]))
                .collect();
            columns.push(Column { name, width, cells });
        }
        return Ok(columns);
    }
    let mut cells = Vec::new();
    let mut width = None;
    for (i, r) in rows.iter().enumerate() {
        let field = format!("{member}[{i}]");
        let row = flatten(r, &field)?;
        match width {
            None => width = Some(row.len()),
            Some(w) if w != row.len() => {
                return Err(refusal(
                    "shape_mismatch",
                    field,
                    format!("{} values, but earlier rows have {w}", row.len()),
                ))
            }
            _ => {}
        }
        cells.extend(row);
    }
    Ok(vec![Column {
        name: member.to_owned(),
        width: width.unwrap_or(0),
        cells,
    }])
}

fn flatten(v: &Value, field: &str) -> Result<Vec<Cell>, Refusal> {
    fn walk(v: &Value, out: &mut Vec<Cell>, field: &str) -> Result<(), Refusal> {
        match v {
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, out, field)),
            other => {
                out.push(Cell::from_value(other).ok_or_else(|| {
                    refusal(
                        "invalid_body",
                        field,
                        "objects are only read at the top of a row",
                    )
                })?);
                Ok(())
            }
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out, field)?;
    Ok(out)
}

fn invalid(e: serde_json::Error) -> Refusal {
    refusal(
        "invalid_body",
        "data",
        format!("not a valid inference body: {e}"),
    )
}

/// Parses one half's body, given as JSON text.
pub fn parse_bytes(bytes: &[u8], half: Half) -> Result<Frame, Refusal> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(refusal(
            "invalid_body",
            "data",
            "an inference body is a JSON object",
        ));
    }
    from_body(serde_json::from_slice(bytes).map_err(invalid)?, half)
}

/// Parses one half's body, given as a parsed JSON value (structured mode).
pub fn parse_value(value: Value, half: Half) -> Result<Frame, Refusal> {
    if !value.is_object() {
        return Err(refusal(
            "invalid_body",
            "data",
            "an inference body is a JSON object",
        ));
    }
    from_body(serde_json::from_value(value).map_err(invalid)?, half)
}

fn from_body(body: AnyBody, half: Half) -> Result<Frame, Refusal> {
    if body.inputs.is_some() || body.outputs.is_some() {
        return v2(body, half);
    }
    let (member, rows) = match half {
        Half::Request => ("instances", body.instances),
        Half::Response => ("predictions", body.predictions),
    };
    if let Some(v) = rows {
        let Value::Array(rows) = v else {
            return Err(refusal("invalid_body", member, "must be an array"));
        };
        return Ok(Frame {
            protocol: Protocol::V1,
            rows: rows.len(),
            columns: from_rows(&rows, member)?,
            model_version: None,
        });
    }
    if let Some(data) = body.data {
        return seldon(data);
    }
    Err(refusal(
        "invalid_body",
        "data",
        format!(
            "expected {member} (KServe v1), {} (Open Inference Protocol v2) or data (Seldon)",
            match half {
                Half::Request => "inputs",
                Half::Response => "outputs",
            }
        ),
    ))
}

fn v2(body: AnyBody, half: Half) -> Result<Frame, Refusal> {
    let (member, tensors) = match half {
        Half::Request => ("inputs", body.inputs),
        Half::Response => ("outputs", body.outputs),
    };
    let tensors = tensors.ok_or_else(|| refusal("invalid_body", member, "required and missing"))?;
    let (rows, columns) = from_tensors(tensors, member)?;
    Ok(Frame {
        protocol: Protocol::V2,
        rows,
        columns,
        model_version: body.model_version,
    })
}

fn seldon(data: Value) -> Result<Frame, Refusal> {
    let Value::Object(mut data) = data else {
        return Err(refusal("invalid_body", "data", "must be an object"));
    };
    if let Some(Value::Array(rows)) = data.remove("ndarray") {
        let mut columns = from_rows(&rows, "data")?;
        if let Some(c) = columns.first_mut() {
            c.name = "data".to_owned();
        }
        return Ok(Frame {
            protocol: Protocol::Seldon,
            rows: rows.len(),
            columns,
            model_version: None,
        });
    }
    if let Some(Value::Object(t)) = data.remove("tensor") {
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| {
                refusal(
                    "invalid_body",
                    "data.tensor.shape",
                    "required: an array of sizes",
                )
            })?;
        let values = flatten(
            t.get("values").unwrap_or(&Value::Null),
            "data.tensor.values",
        )?;
        let tensor = V2Tensor {
            name: "data".to_owned(),
            shape,
            datatype: "FP64".to_owned(),
            data: FlatData(values),
            parameters: None,
        };
        let (rows, columns) = from_tensors(vec![tensor], "data")?;
        return Ok(Frame {
            protocol: Protocol::Seldon,
            rows,
            columns,
            model_version: None,
        });
    }
    Err(refusal(
        "invalid_body",
        "data",
        "expected data.ndarray or data.tensor",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_flat_and_nested_data_agree() {
        let flat =
            br#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}"#;
        let nested = br#"{"id":"r","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6]],"parameters":{}}]}"#;
        let a = parse_bytes(flat, Half::Request).unwrap();
        let b = parse_bytes(nested, Half::Request).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rows, 2);
        assert_eq!(a.columns[0].width, 3);
        assert_eq!(a.columns[0].row(1)[2], Cell::Int(6));
    }

    #[test]
    fn v2_errors_name_the_tensor_and_element() {
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("shape_mismatch", "inputs[x].shape")
        );
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[1,300]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("datatype_mismatch", "inputs[x].data[1]")
        );
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":["yes"]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(e.reason, "datatype_mismatch");
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP128","data":[1]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(e.field, "inputs[x].datatype");
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"y","shape":[3],"datatype":"FP64","data":[1,2,3]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("shape_mismatch", "inputs[y].shape")
        );
        let e = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP64","data":[]}]}"#,
            Half::Request,
        )
        .unwrap_err();
        assert_eq!(e.reason, "shape_mismatch");
    }

    #[test]
    fn every_datatype_is_read() {
        for (dt, v) in [
            ("BOOL", "true"),
            ("INT8", "-128"),
            ("INT16", "32767"),
            ("INT32", "-5"),
            ("INT64", "9223372036854775807"),
            ("UINT8", "255"),
            ("UINT16", "1"),
            ("UINT32", "4294967295"),
            ("UINT64", "18446744073709551615"),
            ("FP16", "0.5"),
            ("FP32", "1e10"),
            ("FP64", "-2"),
            ("BYTES", "\"north\""),
        ] {
            let body = format!(
                r#"{{"outputs":[{{"name":"o","shape":[1],"datatype":"{dt}","data":[{v}]}}]}}"#
            );
            let f = parse_bytes(body.as_bytes(), Half::Response)
                .unwrap_or_else(|e| panic!("{dt}: {e}"));
            assert_eq!(f.rows, 1);
        }
        let e = parse_bytes(
            br#"{"outputs":[{"name":"o","shape":[1],"datatype":"UINT8","data":[-1]}]}"#,
            Half::Response,
        )
        .unwrap_err();
        assert_eq!(e.reason, "datatype_mismatch");
    }

    #[test]
    fn v1_rows_objects_and_seldon() {
        let f = parse_bytes(br#"{"instances":[[1,2],[3,4],[5,6]]}"#, Half::Request).unwrap();
        assert_eq!(
            (f.protocol, f.rows, f.columns[0].width),
            (Protocol::V1, 3, 2)
        );
        let f = parse_bytes(
            br#"{"instances":[{"income":1,"region":"n"},{"income":2}]}"#,
            Half::Request,
        )
        .unwrap();
        assert_eq!(f.column("region").unwrap().row(1), &[Cell::Null]);
        let f = parse_bytes(br#"{"predictions":[1,0,1]}"#, Half::Response).unwrap();
        assert_eq!(f.column("predictions").unwrap().width, 1);
        let e = parse_bytes(br#"{"instances":[[1,2],[3]]}"#, Half::Request).unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("shape_mismatch", "instances[1]")
        );
        let e = parse_bytes(br#"{"predictions":[1]}"#, Half::Request).unwrap_err();
        assert_eq!(e.reason, "invalid_body");
        let f = parse_bytes(
            br#"{"data":{"names":["a","b"],"ndarray":[[1,2]]}}"#,
            Half::Request,
        )
        .unwrap();
        assert_eq!(
            (f.protocol, f.rows, f.columns[0].width),
            (Protocol::Seldon, 1, 2)
        );
        let f = parse_bytes(
            br#"{"data":{"tensor":{"shape":[2,2],"values":[0.1,0.9,0.8,0.2]}}}"#,
            Half::Response,
        )
        .unwrap();
        assert_eq!((f.rows, f.columns[0].width), (2, 2));
        assert!(parse_bytes(b"[1]", Half::Request).is_err());
    }
}
