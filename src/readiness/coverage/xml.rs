//! The XML plumbing shared by the Cobertura and JaCoCo readers: a pull parser (quick-xml) that
//! reports elements with their parent, attribute access, and errors carrying line numbers.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::{CoverageError, CoverageFormat, excerpt, line_at};

/// Tells Cobertura from JaCoCo by the root element, the one thing both formats fix.
pub(super) fn detect(bytes: &[u8]) -> Result<CoverageFormat, CoverageError> {
    let mut reader = Reader::from_reader(bytes);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                return match name.as_str() {
                    "coverage" if e.try_get_attribute("clover").ok().flatten().is_some() => {
                        Err(CoverageError::Unrecognised(
                            "this is Clover XML (root <coverage clover=...>), not Cobertura".into(),
                        ))
                    }
                    "coverage" => Ok(CoverageFormat::Cobertura),
                    "report" => Ok(CoverageFormat::Jacoco),
                    other => Err(CoverageError::Unrecognised(format!(
                        "XML whose root element is <{}>, expected <coverage> (Cobertura) or <report> (JaCoCo)",
                        excerpt(other)
                    ))),
                };
            }
            Ok(Event::Eof) => return Err(CoverageError::Unrecognised("XML without a root element".into())),
            Ok(_) => {}
            Err(e) => {
                let line = line_at(bytes, reader.error_position() as usize);
                return Err(CoverageError::Unrecognised(format!("malformed XML at line {line}: {e}")));
            }
        }
    }
}

/// An element start (or empty element) with the names of the elements enclosing it.
pub(super) struct Element<'a, 's> {
    pub start: BytesStart<'a>,
    /// Enclosing element names, outermost first.
    pub ancestors: &'s [Vec<u8>],
    /// 1-based line of the element, for error messages.
    pub line: usize,
}

impl Element<'_, '_> {
    pub fn name(&self) -> &[u8] {
        self.start.local_name().into_inner()
    }

    pub fn is_root(&self) -> bool {
        self.ancestors.is_empty()
    }

    pub fn parent_is(&self, name: &str) -> bool {
        self.ancestors.last().is_some_and(|p| p == name.as_bytes())
    }

    /// Whether some enclosing element is named `name`.
    pub fn within(&self, name: &str) -> bool {
        self.ancestors.iter().any(|a| a == name.as_bytes())
    }

    /// The unescaped value of attribute `name`, if present.
    pub fn attr(&self, format: CoverageFormat, name: &str) -> Result<Option<String>, CoverageError> {
        let attr =
            self.start.try_get_attribute(name).map_err(|e| self.error(format, format!("bad attributes: {e}")))?;
        attr.map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .map_err(|e| self.error(format, format!("attribute {name}: {e}")))
        })
        .transpose()
    }

    /// Attribute `name`, which must be present.
    pub fn required(&self, format: CoverageFormat, name: &str) -> Result<String, CoverageError> {
        self.attr(format, name)?.ok_or_else(|| {
            self.error(format, format!("<{}> has no {name} attribute", String::from_utf8_lossy(self.name())))
        })
    }

    /// Attribute `name` as a non-negative integer, if present.
    pub fn count(&self, format: CoverageFormat, name: &str) -> Result<Option<u64>, CoverageError> {
        self.attr(format, name)?
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    self.error(
                        format,
                        format!(
                            "<{}> attribute {name} must be a non-negative integer, got {v:?}",
                            String::from_utf8_lossy(self.name())
                        ),
                    )
                })
            })
            .transpose()
    }

    pub fn error(&self, format: CoverageFormat, message: impl Into<String>) -> CoverageError {
        CoverageError::invalid(format, Some(self.line), message)
    }
}

/// Walks every element of `text`, handing each start (and empty element) to `visit` with its
/// parent's name. Malformed XML (including mismatched end tags) is an error with its line.
pub(super) fn walk(
    text: &str,
    format: CoverageFormat,
    mut visit: impl FnMut(&Element<'_, '_>) -> Result<(), CoverageError>,
) -> Result<(), CoverageError> {
    let bytes = text.as_bytes();
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    // Line numbers are computed incrementally: counting from the start for every element would
    // make large reports quadratic.
    let mut line = 1usize;
    let mut counted_to = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                line += count_newlines(bytes, counted_to, before);
                counted_to = before;
                let name = start.local_name().into_inner().to_vec();
                visit(&Element { start, ancestors: &stack, line })?;
                stack.push(name);
            }
            Ok(Event::Empty(start)) => {
                line += count_newlines(bytes, counted_to, before);
                counted_to = before;
                visit(&Element { start, ancestors: &stack, line })?;
            }
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Eof) => {
                if let Some(open) = stack.last() {
                    return Err(CoverageError::invalid(
                        format,
                        Some(line_at(bytes, bytes.len())),
                        format!("the document ends inside <{}> (truncated file?)", String::from_utf8_lossy(open)),
                    ));
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                let at = line_at(bytes, reader.error_position() as usize);
                return Err(CoverageError::invalid(format, Some(at), format!("malformed XML: {e}")));
            }
        }
    }
}

fn count_newlines(bytes: &[u8], from: usize, to: usize) -> usize {
    let to = to.min(bytes.len());
    if from >= to {
        return 0;
    }
    bytes[from..to].iter().filter(|&&b| b == b'\n').count()
}
