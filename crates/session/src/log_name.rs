//! Names of enum values for log lines, without their data: the path of
//! variant names of a value's `Debug` output, at most two deep
//! (`Sip/Dtmf`, `EmitMetric/AnsweredAfter`, `WriteStoreEnd`). A JSON log
//! gets a short typed string instead of a Rust Debug rendering, and what
//! a variant carries (DTMF digits, SDP, texts) never reaches the log.
//! Generic over `Debug`, so a variant added to the machine's inputs or
//! actions is named without a table to keep up to date.

use std::fmt::{self, Write as _};

/// How many variant names the path keeps.
const DEPTH: usize = 2;

/// `value`'s variant path (see the module docs); lazily formatted, so a
/// disabled log level costs nothing.
#[derive(Clone, Copy)]
pub(crate) struct Variant<'a, T: ?Sized>(pub &'a T);

impl<T: fmt::Debug + ?Sized> fmt::Display for Variant<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Path {
            out: f,
            names: 0,
            in_name: false,
            failed: false,
        };
        // The adapter stops the Debug output with an error once the path
        // is complete; only a failure of `f` itself is an error here.
        let _ = write!(path, "{:?}", self.0);
        if path.failed { Err(fmt::Error) } else { Ok(()) }
    }
}

/// Writes the identifier characters of the first [`DEPTH`] names of a
/// Debug output (each starting with a capital), joined by `/` where a `(`
/// opens the next one.
struct Path<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    names: usize,
    in_name: bool,
    failed: bool,
}

impl fmt::Write for Path<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_alphanumeric() || c == '_' {
                if !self.in_name {
                    // A variant name starts with a capital; data does not.
                    if self.names == DEPTH || !c.is_ascii_uppercase() {
                        return Err(fmt::Error);
                    }
                    if self.names > 0 {
                        self.emit('/')?;
                    }
                    self.names += 1;
                    self.in_name = true;
                }
                self.emit(c)?;
            } else if c == '(' && self.in_name {
                self.in_name = false;
            } else {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

impl Path<'_, '_> {
    fn emit(&mut self, c: char) -> fmt::Result {
        self.out.write_char(c).inspect_err(|_| self.failed = true)
    }
}

#[cfg(test)]
mod tests {
    use super::Variant;

    #[derive(Debug)]
    #[allow(dead_code, reason = "only formatted")]
    enum Inner {
        Five,
        Code(u16),
    }

    #[derive(Debug)]
    #[allow(dead_code, reason = "only formatted")]
    enum Outer {
        Bye,
        Dtmf(Inner),
        Reject { status: u16 },
        Wait(std::time::Duration),
    }

    #[test]
    fn names_stop_at_data_and_at_two_levels() {
        let name = |v: &Outer| Variant(v).to_string();
        assert_eq!(name(&Outer::Bye), "Bye");
        assert_eq!(name(&Outer::Dtmf(Inner::Five)), "Dtmf/Five");
        assert_eq!(name(&Outer::Dtmf(Inner::Code(486))), "Dtmf/Code");
        assert_eq!(name(&Outer::Reject { status: 503 }), "Reject");
        assert_eq!(
            name(&Outer::Wait(std::time::Duration::from_millis(1500))),
            "Wait"
        );
        assert_eq!(Variant(&Some(3)).to_string(), "Some");
    }
}
